"""The cached loader, the Hefei-layout command and the figure command."""
from __future__ import annotations

import warnings

import numpy as np

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


def test_plot_writes_a_png_with_one_panel_per_diagnosis(tmp_path):
    out = tmp_path / "fig.png"
    plot_main(["--out", str(out), "--n", "400", "--seconds", "2"])
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
