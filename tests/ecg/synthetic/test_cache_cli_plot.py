"""The cached loader, the Hefei-layout command and the figure command."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from ecg.data import load_dataset
from ecg.data.dataset import ALL_12_LEADS
from ecg.synthetic import generate, load_synthetic
from ecg.synthetic.__main__ import main as cli_main
from ecg.synthetic.plot import main as plot_main


def test_load_synthetic_generates_once_then_reads_the_cache(tmp_path, monkeypatch):
    first = load_synthetic(30, seed=1, cache_dir=tmp_path)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1
    import ecg.synthetic.cache as cache

    monkeypatch.setattr(cache, "generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated")))
    second = load_synthetic(30, seed=1, cache_dir=tmp_path)
    assert np.array_equal(first.signals, second.signals) and first.record_ids == second.record_ids
    assert np.array_equal(second.signals, generate(30, seed=1).signals)


def test_cache_dir_from_environment_and_options_in_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path))
    load_synthetic(12, seed=0)
    load_synthetic(12, seed=0, noise=0.5)
    load_synthetic(12, seed=0, fs=250, length=2500)
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("synthetic-")]) == 3


def test_cli_writes_the_hefei_layout_that_the_reader_reads_back(tmp_path):
    assert cli_main(["--out", str(tmp_path), "--n", "25", "--seed", "4", "--leads", "12", "--balanced"]) == 0
    assert (tmp_path / "ecg_train.txt").exists() and (tmp_path / "ecg_arrythmia.txt").exists()
    with warnings.catch_warnings():  # 25 records leave some classes empty; the reader says so, rightly
        warnings.simplefilter("ignore", UserWarning)
        back = load_dataset(tmp_path, leads=ALL_12_LEADS, use_cache=False)
    made = generate(25, 4, leads=ALL_12_LEADS, balanced=True)
    order = [back.record_ids.index(r) for r in made.record_ids]
    assert np.array_equal(back.signals[order], made.signals)
    assert np.array_equal(back.labels[order][:, [back.class_names.index(c) for c in made.class_names]], made.labels)


def test_plot_writes_a_png_with_one_panel_per_diagnosis(tmp_path, monkeypatch):
    """One panel per diagnosis, in the class order, titled with it, drawing the eight leads of a record that
    carries it (and its other labels after a "+"); the rest of the grid empty; the PNG decodes at the figure's
    size."""
    import matplotlib.figure
    from PIL import Image

    from ecg.synthetic.diagnoses import SYNTHETIC_CLASSES

    saved = []
    real_savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *args, **kwargs: (saved.append(fig), real_savefig(fig, *args, **kwargs))[1])
    out = tmp_path / "fig.png"
    plot_main(["--out", str(out), "--n", "400", "--seconds", "2"])
    (figure,) = saved
    panels = [ax for ax in figure.axes if ax.axison]
    assert len(panels) == len(SYNTHETIC_CLASSES) and len(figure.axes) == 4 * -(-len(SYNTHETIC_CLASSES) // 4)
    dataset = generate(400, 0, balanced=True, noise=0.5)  # what the command drew from (its defaults)
    for ax, name in zip(panels, SYNTHETIC_CLASSES):
        title, others = ax.get_title().split("\n")
        assert title == name
        traces = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]  # not the paper's grid lines
        assert [len(line.get_xdata()) for line in traces] == [2 * dataset.fs] * 8  # the 8 leads, 2 s each
        assert [text.get_text() for text in ax.texts] == list(dataset.lead_names)
        # A record with that diagnosis and exactly the other labels the title lists.
        labels = {frozenset(dataset.class_names[c] for c in np.flatnonzero(row)) for row in dataset.labels}
        listed = {name, *(others.removeprefix("+ ").split(", ") if others else [])}
        assert frozenset(listed) in labels
    image = Image.open(out)
    image.load()  # every pixel decodes: a truncated file raises here
    width, height = figure.get_size_inches() * figure.dpi
    assert image.format == "PNG" and image.size == pytest.approx((width, height), abs=1)
