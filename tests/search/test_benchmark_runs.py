"""The field's benchmarks through launch.py and ecg.inspect as a user runs them: a PTB-XL-layout folder (written
by tests/conftest.py with wfdb, real statement table) and the shared CinC 2021 sample, in tiny searches. The two
searches are the README's benchmark commands as written (`README_BENCHMARKS`; tests/search/test_every_space.py
checks the README lists them), with tiny sizes added. They join the session's `ray start` cluster
(`ray_cluster`, tests/search/conftest.py): what they check is the data's conventions, not how Ray starts."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ecg.challenge import scored_columns
from ecg.data.cinc2021 import scoring
from ecg import evaluation
from tests.ecg.test_challenge import reference_metric

TINY = ("--space", "ecgnet", "--num-samples", "2", "--max-epochs", "1", "--top-k", "2", "--cpus-per-trial", "1",
        "--seed", "0")
# The README's commands, and what each becomes here (the downloads stood in for by the fixtures' folders).
README_BENCHMARKS = {
    "python launch.py --data ~/ptb-xl --task superdiagnostic --fs 100 --leads 12":
        ("--data", "{ptbxl}", "--task", "superdiagnostic", "--fs", "100", "--leads", "12"),
    "python launch.py --data ~/cinc2021/training --task cinc2021": ("--data", "{cinc}", "--task", "cinc2021"),
}


def readme_command(command: str, **folders) -> tuple[str, ...]:
    return tuple(arg.format(**folders) for arg in README_BENCHMARKS[command])


def _official(record_ids: pd.Series) -> list[str]:
    """strat_fold is i % 10 + 1 for ecg_id i + 1 in the fixture: folds 1-8 train, 9 val, 10 test."""
    folds = (record_ids.astype(int) - 1) % 10 + 1
    return ["train" if f <= 8 else "val" if f == 9 else "test" for f in folds]


def test_inspect_shows_each_task_with_the_official_split(ptbxl_dir, cli, tmp_path, capsys):
    """`python -m ecg.inspect DIR --task superdiagnostic` as a user runs it; the other tasks and a task of another
    benchmark through its `main` (the same code, without a process start each)."""
    from ecg.inspect import main

    proc = subprocess.run([sys.executable, "-m", "ecg.inspect", str(ptbxl_dir), "--task", "superdiagnostic"],
                          cwd=tmp_path, env=cli.env(), text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "records: 50  (signal files present: 50)"
    assert lines[1] == ("task: superdiagnostic  split: official  search metric by default: val_macro_auc  "
                        "(left out, no label in the task: 10)")
    # superclass counts of the fixture's cycle (tests/ecg/data/test_ptbxl.py); official folds 8/1/1 of 10
    table = {line.split()[-1]: [int(v) for v in line.split()[1:5]] for line in lines[4:9]}
    assert table == {"CD": [10, 8, 2, 0], "HYP": [10, 8, 0, 2], "MI": [20, 16, 2, 2], "NORM": [20, 16, 2, 2],
                     "STTC": [10, 8, 2, 0]}
    assert "split: train 40 (80.0%), val 6 (12.0%), test 4 (8.0%)" in lines
    for task, n_classes in (("all", 71), ("diagnostic", 44), ("subdiagnostic", 23), ("form", 19), ("rhythm", 12)):
        assert main([str(ptbxl_dir), "--task", task, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert len(report["classes"]) == n_classes and report["convention"]["split"] == "official", task
    assert main([str(ptbxl_dir), "--task", "cinc2021"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.strip().endswith("this is ptbxl data"), err


@pytest.mark.slow
def test_ptbxl_search_uses_the_official_split_and_reports_auc_with_an_interval(ptbxl_dir, cli, tmp_path, ray_cluster):
    command = readme_command("python launch.py --data ~/ptb-xl --task superdiagnostic --fs 100 --leads 12",
                             ptbxl=ptbxl_dir)
    proc = cli.launch(*command, *TINY, "--results-dir", str(tmp_path), "--address", ray_cluster.address,
                      env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == f"results in {run_dir}"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"]["convention"] == {"task": "superdiagnostic", "split": "official", "metric": "val_macro_auc"}
    assert info["args"]["metric"] == "val_macro_auc"
    data = info["data"]
    assert (data["fs"], data["samples"], data["leads"], data["classes"]) == (100, 1000, 12, 5)
    split = pd.read_csv(run_dir / "split.csv", dtype=str)
    # The fixture's 60 records less the 10 with no superdiagnostic label, in their official folds.
    assert len(split) == 50 and split["split"].tolist() == _official(split["record_id"])
    trials = cli.read_csv(run_dir / "trials.csv")
    assert "best_val_macro_auc" in trials.columns and len(trials) == 2
    results = cli.read_csv(run_dir / "test_results.csv")
    for column in ("test_macro_auc", "test_macro_auc_low", "test_macro_auc_high", "test_micro_f1", "test_macro_f1"):
        assert column in results.columns, column
    assert (results["test_macro_auc_low"] <= results["test_macro_auc"] + 1e-9).all()
    assert (results["test_macro_auc"] <= results["test_macro_auc_high"] + 1e-9).all()
    assert "test_challenge_score" not in results.columns and not (run_dir / "per_source.csv").exists()


@pytest.mark.slow
def test_cinc_sample_search_selects_on_the_challenge_score(cinc_dir, cli, tmp_path, ray_cluster):
    command = readme_command("python launch.py --data ~/cinc2021/training --task cinc2021", cinc=cinc_dir)
    proc = cli.launch(*command, *TINY, "--results-dir", str(tmp_path), "--address", ray_cluster.address,
                      env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"]["convention"] == {"task": "cinc2021", "split": "stratified", "metric": "val_challenge_score"}
    assert info["args"]["metric"] == "val_challenge_score"  # the task's own metric, without --metric
    assert info["data"]["classes"] == 26
    epochs = cli.read_csv(run_dir / "epochs.csv")
    assert epochs["best_so_far_val_challenge_score"].tolist() == pytest.approx(epochs["val_challenge_score"].tolist())
    trials = cli.read_csv(run_dir / "trials.csv")
    study = sorted(t.value for t in cli.study_trials(run_dir))
    assert study == pytest.approx(sorted(trials["best_val_challenge_score"]))  # Optuna's value is the score
    results = cli.read_csv(run_dir / "test_results.csv")
    assert {"val_challenge_score", "test_challenge_score"} <= set(results.columns)
    # Each model's score under each threshold rule is the Challenge's metric (its evaluate_model.py loops,
    # tests/ecg/test_challenge.py) of the test probabilities it kept, binarised at that rule's thresholds.
    kept = evaluation.TestProbabilities.from_frame(pd.read_csv(run_dir / "test_probabilities.csv", dtype={"record_id": str}))
    per_class = pd.read_csv(run_dir / "per_class.csv", dtype={"thresholds": str})
    score = scoring()
    columns = scored_columns(kept.class_names, score)
    for row in results.itertuples():
        rule = per_class[(per_class["model"] == row.model) & (per_class["thresholds"] == str(row.thresholds))]
        thresholds = rule.set_index("class").loc[kept.class_names, "threshold"].to_numpy(float)
        outputs = (kept.probabilities[row.model] >= thresholds).astype(int)[:, columns]
        expected = reference_metric(score.weights, kept.labels[:, columns], outputs, score.normal_index)
        assert row.test_challenge_score == pytest.approx(expected, abs=1e-9), (row.model, row.thresholds)
    sources = pd.read_csv(run_dir / "per_source.csv")
    split = pd.read_csv(run_dir / "split.csv", dtype=str)
    test_ids = split.loc[split["split"] == "test", "record_id"]
    expected = test_ids.str.extract(r"^([A-Z]+)")[0].value_counts().sort_index()
    one = sources[(sources["model"] == "rank1") & (sources["thresholds"] == "0.5")]
    assert dict(zip(one["source"], one["records"])) == expected.to_dict()
    assert set(one["database"]) <= {"Georgia", "PTB-XL", "Chapman-Shaoxing/Ningbo"}
    # ... and so is each source's score, on that source's test records alone.
    prefixes = np.array([record.rstrip("0123456789") for record in kept.record_ids])
    outputs = (kept.probabilities["rank1"] >= 0.5).astype(int)[:, columns]
    for source, value in zip(one["source"], one["challenge_score"]):
        mine = prefixes == source
        assert value == pytest.approx(reference_metric(score.weights, kept.labels[mine][:, columns], outputs[mine],
                                                       score.normal_index), abs=1e-9), source
