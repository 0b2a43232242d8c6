"""report.html from a run folder's files alone: every embedded figure decodes, a moved folder works,
Chinese class names render (with a CJK font) or become index labels with a legend, never empty boxes."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from ecg.synthetic import generate
from ecg import run_folder
from ecg.run_folder import RunFolder
from search.report import ClassLabels, _renderable, asha_rungs, build
from search.winners import evaluate_winners

ROOT = Path(__file__).resolve().parents[2]
CHINESE = ["窦性心律", "窦性心动过速", "房颤"]


def _study(path: Path, trials: int = 15) -> None:
    """An Optuna study like a search's: two sampled parameters, complete and pruned trials (every third)."""
    study = optuna.create_study(study_name="search", storage=f"sqlite:///{path}", direction="maximize")
    rng = np.random.default_rng(0)
    for i in range(trials):
        trial = study.ask()
        width = trial.suggest_int("model/width", 4, 16)
        lr = trial.suggest_float("optim/lr", 1e-4, 1e-2, log=True)
        value = 0.5 + 0.02 * width + 0.01 * rng.random()
        if i % 3 == 2:
            trial.report(value, 1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
        assert lr > 0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A complete run folder written by hand and by evaluate_winners on tiny untrained models."""
    from tests.search.test_winners import make_record

    root = tmp_path_factory.mktemp("run")
    run = root / "ecgnet-20261201-100000"
    run.mkdir()
    data = generate(60, seed=1, fs=250, length=2500)
    val, test = data.subset(np.arange(0, 30)), data.subset(np.arange(30, 60))
    ranked = [make_record(root, t, f1, s) for t, f1, s in (("aaaa0001", 0.9, 1), ("aaaa0002", 0.8, 2))]
    results = evaluate_winners(ranked, val, test, top_k=2)
    per_class = results.per_class.copy()
    names = dict(zip(test.class_names, CHINESE * 10))
    per_class["class"] = per_class["class"].map(names)
    run_folder.write_csv(results.test_results, run / "test_results.csv")
    run_folder.write_csv(per_class, run / "per_class.csv")
    run_folder.write_csv(results.test_probabilities, run / "test_probabilities.csv")
    run_folder.write_csv(pd.DataFrame({"rank": [1, 2], "trial_id": ["aaaa0001", "aaaa0002"],
                                       "best_val_micro_f1": [0.9, 0.8], "best_epoch": [3, 2], "params": [10000, 20000],
                                       **{k: [r.config[k] for r in ranked] for k in ranked[0].config}}),
                         run / "best_configs.csv")
    trials = pd.DataFrame({
        "trial_id": [f"aaaa000{i}" for i in range(1, 9)], "trial_number": range(8),
        "status": ["TERMINATED"] * 7 + ["ERROR"], "epochs_run": [3, 3, 1, 3, 3, 1, 3, 1],
        "stopped_by_asha": [False, False, True, False, False, True, False, False], "family": ["ecgnet"] * 4 + ["gru"] * 4,
        "best_val_micro_f1": np.linspace(0.9, 0.5, 8), "params": [1e4, 2e4, 3e4, 4e4, 5e5, 6e5, 7e5, np.nan],
        "macs": [1e6] * 8, "latency_ms_b1": np.linspace(1, 3, 8), "latency_ms_b64": np.linspace(0.1, 0.3, 8),
        "peak_mem_mb": [500.0] * 8, "train_time_s": [10.0] * 8, "best_epoch": [3, 2, 1, 3, 1, 1, 2, 1]})
    run_folder.write_csv(trials, run / "trials.csv")
    epochs = pd.DataFrame([{"trial_id": t, "epoch": e, "val_micro_f1": 0.3 + 0.1 * e, "train_loss": 1.0 / e}
                           for t, n in zip(trials["trial_id"], trials["epochs_run"]) for e in range(1, n + 1)])
    run_folder.write_csv(epochs, run / "epochs.csv")
    _study(run / "optuna.db")
    run_folder.write_json({"status": "complete", "space": "all", "seed": 0, "wall_time_s": 100.0,
                        "args": {"metric": "val_micro_f1", "scheduler": "asha", "grace_period": 1,
                                 "reduction_factor": 3, "max_epochs": 3},
                        "data": {"source": "synthetic", "records": 60, "classes": 26,
                                 "split": {"train": 0, "val": 30, "test": 30}},
                        "search_constants": {"optim/epochs": 3}, "chosen_model": results.chosen}, run / "run.json")
    return run


def _figures(text: str) -> list[Image.Image]:
    images = []
    for payload in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text):
        raw = base64.b64decode(payload, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(raw))
        image.load()  # decodes every pixel: a truncated file raises here
        images.append(image)
    return images


def test_every_figure_decodes_and_each_section_is_there(run_dir: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = build(RunFolder.open(run_dir))
    assert not [w for w in caught if "missing from" in str(w.message)]  # no glyph drawn as an empty box
    images = _figures(text)
    # progress, learning curves, fANOVA, PED-ANOVA, families, per-class F1, ensemble weights, thresholds, costs
    assert len(images) == 9, [s for s in re.findall(r"<h2>(.*?)</h2>", text)]
    assert all(image.width > 200 and image.height > 100 for image in images)
    for title in ("The run", "Progress of the search", "Learning curves", "Parameter importances", "Families side by side",
                  "Per-class F1", "Ensemble members and weights", "What the thresholds do", "Cost against accuracy"):
        assert f"<h2>{title}" in text, title
    assert "could not be drawn" not in text
    assert "窦性心律" in text  # the class names in the legend table, whatever the font
    assert "5 complete, 2 stopped by ASHA, 1 errored" in text  # 7 TERMINATED, 2 of them stopped early
    assert "10 complete trials (PRUNED trials are left out" in text


def test_a_study_of_few_trials_gets_no_importances_and_says_why(run_dir: Path, tmp_path: Path) -> None:
    few = tmp_path / run_dir.name
    shutil.copytree(run_dir, few)
    (few / "optuna.db").unlink()
    _study(few / "optuna.db", trials=13)  # 9 complete, one short of an importance
    text = build(RunFolder.open(few))
    assert len(_figures(text)) == 7  # the two importance figures are left out
    assert "Not rated: the study has 9 complete trials and an importance needs at least 10" in text


def test_search_report_rebuilds_a_moved_folder(run_dir: Path, tmp_path: Path, user_env) -> None:
    moved = tmp_path / "elsewhere" / run_dir.name
    shutil.copytree(run_dir, moved)
    proc = subprocess.run([sys.executable, "-m", "search.report", str(moved)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=user_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = moved / "report.html"
    assert proc.stdout.strip().endswith(str(report))
    assert len(_figures(report.read_text())) == 9
    assert not list(moved.glob(".report.html.*"))  # written atomically, no temporary left
    proc = subprocess.run([sys.executable, "-m", "search.report", str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=user_env)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr


def test_class_names_without_glyphs_become_index_labels() -> None:
    assert _renderable(["sinus rhythm"], None)
    assert not _renderable(CHINESE, "DejaVu Sans")  # matplotlib's default font has no CJK glyphs
    labels = ClassLabels.for_names(CHINESE)
    if labels.indexed:  # no CJK font installed: C0, C1, ... with the names in the legend table
        assert [labels.label(i) for i in range(3)] == ["C0", "C1", "C2"]
    else:
        assert labels.font is not None and _renderable(CHINESE, labels.font) and labels.label(0) == "窦性心律"
    assert not ClassLabels.for_names(["AF", "SR"]).indexed


def test_asha_rungs() -> None:
    assert asha_rungs({"scheduler": "asha", "grace_period": 2, "reduction_factor": 3, "max_epochs": 60}) == [2, 6, 18, 54]
    assert asha_rungs({"scheduler": "fifo", "grace_period": 2, "reduction_factor": 3, "max_epochs": 60}) == []


def test_an_interrupted_run_gets_a_report_without_test_sections(run_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / run_dir.name
    shutil.copytree(run_dir, partial)
    for name in ("test_results.csv", "per_class.csv"):
        (partial / name).unlink()
    info = json.loads((partial / "run.json").read_text())
    info.update(status="interrupted", chosen_model=None)
    (partial / "run.json").write_text(json.dumps(info))
    text = build(RunFolder.open(partial))
    assert "No test evaluation in this run" in text and "could not be drawn" not in text
    assert len(_figures(text)) == 6


@pytest.mark.parametrize("damage, message", [
    ("run.json", "run.json is not valid JSON at line "),
    ("trials.csv", "trials.csv ends in the middle of line"),
])
def test_a_damaged_run_folder_is_refused_in_one_line_and_no_report_is_written(damage, message, run_dir, tmp_path,
                                                                               capsys) -> None:
    from search.report import main

    damaged = tmp_path / run_dir.name
    shutil.copytree(run_dir, damaged)
    (damaged / "report.html").unlink(missing_ok=True)
    text = (damaged / damage).read_text()
    (damaged / damage).write_text(text[: len(text) // 2])  # cut mid-file, as an interrupted copy leaves it
    assert main([str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("search.report: error: ") and message in err, err
    assert not (damaged / "report.html").exists()


def test_a_run_recorded_running_that_no_process_holds_is_reported_as_interrupted(run_dir, tmp_path) -> None:
    stale = tmp_path / run_dir.name
    shutil.copytree(run_dir, stale)
    info = json.loads((stale / "run.json").read_text())
    info.update(status="running")
    (stale / "run.json").write_text(json.dumps(info))
    text = build(RunFolder.open(stale))
    assert "<th>status</th><td>interrupted (the process ended without saying so)</td>" in text


def test_the_report_says_when_validation_could_not_tell_the_trials_apart(run_dir, tmp_path) -> None:
    tied = tmp_path / run_dir.name
    shutil.copytree(run_dir, tied)
    trials = pd.read_csv(tied / "trials.csv", dtype={"trial_id": str})
    trials["best_val_micro_f1"] = 0.25
    trials.to_csv(tied / "trials.csv", index=False)
    text = build(RunFolder.open(tied))
    assert ("validation could not tell the 7 finished trials apart (each scored val_micro_f1 0.2500 at best): "
            "they are ranked by trial number") in text
    assert "could not tell" not in build(RunFolder.open(run_dir))


def _chosen(run_dir: Path) -> pd.Series:
    test = pd.read_csv(run_dir / "test_results.csv")
    chosen = json.loads((run_dir / "run.json").read_text())["chosen_model"]
    return test[(test["model"] == chosen["model"]) & (test["thresholds"].astype(str) == chosen["thresholds"])].iloc[0]


INTERVAL = r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]"


@pytest.fixture(scope="module")
def report_text(run_dir: Path) -> str:
    return build(RunFolder.open(run_dir))


def test_the_report_leads_with_micro_and_macro_f1_and_their_intervals(run_dir: Path, report_text: str) -> None:
    text = report_text
    chosen = _chosen(run_dir)
    headline = re.search(rf"Chosen model on test: micro-F1 {INTERVAL}, macro-F1 {INTERVAL} \({INTERVAL} over the "
                         rf"(\d+) of 26 classes present in test\), macro AUC {INTERVAL} \(95% bootstrap intervals "
                         r"over the 30 test records\)", text)
    assert headline, text[:4000]
    values = [float(v) for v in headline.groups()]
    for (value, low, high), column in zip([values[0:3], values[3:6], values[6:9], values[10:13]],
                                          ("test_micro_f1", "test_macro_f1", "test_macro_f1_present", "test_macro_auc")):
        assert value == pytest.approx(chosen[column], abs=5e-4) and low <= value <= high and low < high, column
    assert int(values[9]) == chosen["test_classes_present"]
    # One bootstrap: the macro AUC interval is test_results.csv's, drawn at the evaluation on the same resamples.
    assert values[11:13] == pytest.approx([chosen["test_macro_auc_low"], chosen["test_macro_auc_high"]], abs=5e-4)
    # Every test figure with its interval, rank1 at 0.5 beside it and the paired difference, and what that says.
    for name in ("micro-F1", "macro-F1 (every class)", "macro-F1 (classes present in test)", "micro precision",
                 "micro recall", "exact match", "macro AUC"):
        assert re.search(rf"<td>{re.escape(name)}</td>\s*<td>{INTERVAL}</td>\s*<td>\d\.\d{{3}}</td>\s*"
                         r"<td>[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]</td>\s*<td>(higher|lower|no difference "
                         r"shown)", text), name
    assert "at least as good" not in text
    assert "1000 resamples of the test records" in text


def test_the_verdict_calls_a_difference_inside_its_interval_no_difference(run_dir: Path, monkeypatch) -> None:
    from search import report

    run = report.Run.read(RunFolder.open(run_dir))
    scores = run.intervals.scores.copy()
    scores.loc[scores["score"] == "micro_f1", ["difference_low", "difference_high"]] = (-0.01, 0.02)
    scores.loc[scores["score"] == "macro_f1", ["difference_low", "difference_high"]] = (0.01, 0.02)
    run.__dict__["intervals"] = report.ScoreIntervals(scores, run.intervals.per_class, 1000, 0.95)
    sentence = report.verdict(run)
    assert "[-0.0100, +0.0200]: no difference shown (the interval holds 0)" in sentence
    assert "[+0.0100, +0.0200]: higher (the interval is above 0)" in sentence


def test_classes_absent_from_test_are_not_scored(run_dir: Path, report_text: str) -> None:
    text = report_text
    chosen = _chosen(run_dir)
    per_class = pd.read_csv(run_dir / "per_class.csv")
    rows = per_class[(per_class["model"] == chosen["model"]) & (per_class["thresholds"].astype(str) == chosen["thresholds"])]
    absent = int((rows["support"] == 0).sum())
    assert 0 < absent < len(rows)
    # In the per-class table an absent class reads n/a for F1, precision and recall; a present one its interval.
    # Without a font for the class names (fonts-noto-cjk) the table starts with their figure labels, C0, C1, ...
    cells = re.findall(r"<tr>\s*(?:<td>C\d+</td>\s*)?<td>[^<]*</td>\s*<td>(\d+)</td>\s*<td>\d+</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>"
                       r"\s*<td>([^<]*)</td>", text)
    assert len(cells) == len(rows)
    for support, *scored in cells:
        if int(support) == 0:
            assert scored == ["n/a"] * 3
        else:
            assert all(re.fullmatch(INTERVAL, cell) for cell in scored), scored
    assert f"{absent} of {len(rows)} classes have no positive record in the test split: test cannot score them" in text


def test_the_winners_table_has_every_sampled_parameter_as_built(run_dir: Path, tmp_path: Path) -> None:
    from search.study import BUILT_ATTR_PREFIX, RAY_TRIAL_ID_ATTR

    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    # rank1 drew a stem kernel of 37 at the records' rate and was built with 15 at its own (spaces.rate).
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{copy / 'optuna.db'}")
    study.add_trial(optuna.trial.create_trial(
        params={"model/stem_kernel": 37}, distributions={"model/stem_kernel": optuna.distributions.IntDistribution(
            9, 49, step=4)}, value=0.9, user_attrs={RAY_TRIAL_ID_ATTR: "aaaa0001", f"{BUILT_ATTR_PREFIX}model/stem_kernel": 15}))
    text = build(RunFolder.open(copy))
    section = text[text.index("<h2>The winners&#x27; hyperparameters"):]
    section = section[:section.index("<h2>", 5)]
    best = pd.read_csv(copy / "best_configs.csv")
    constants = json.loads((copy / "run.json").read_text())["search_constants"]
    sampled = [c for c in best.columns if "/" in c or c == "family"]
    for name in sampled:
        if name in constants:
            assert f"<th>{name}</th>" not in section, name  # the search's constants are under The run
        else:
            assert f"<th>{name}</th>" in section, name
    assert "<td>15 (drawn 37)</td>" in section and "<td>0.001</td>" in section
    assert "trial 0 (aaaa0001)" in section and "trial 1 (aaaa0002)" in section


def test_a_run_folder_from_before_gets_its_report_without_intervals(run_dir: Path, tmp_path: Path) -> None:
    """A run folder written before test_probabilities.csv and one-number trials (trials.csv's `trial_number` was
    Ray's count, `optuna_trial_number` beside it): the report is built, says why there is no interval, and never
    calls a difference "at least as good"."""
    old = tmp_path / run_dir.name
    shutil.copytree(run_dir, old)
    (old / "test_probabilities.csv").unlink()
    trials = pd.read_csv(old / "trials.csv")
    trials.insert(2, "optuna_trial_number", trials["trial_number"])
    trials["trial_number"] += 1
    run_folder.write_csv(trials, old / "trials.csv")
    text = build(RunFolder.open(old))
    assert "could not be drawn" not in text
    assert "no intervals" in text and "test_probabilities.csv" in text
    assert re.search(r"Chosen model on test: micro-F1 \d\.\d{3}, macro-F1 \d\.\d{3} ", text)
    assert "at least as good" not in text and "trial 1 (aaaa0001)" in text
