"""An end-to-end search with Ray on small generated data: every export and ASHA's early stops. The search is the
session's shared one (`finished_run`, tests/search/conftest.py: launch.py with a local Ray, six ECGNet trials one
at a time, ASHA with grace period 1 and reduction factor 3, the top two evaluated). (Resume after the driver is
killed, and of a moved or copied run folder: tests/search/test_run_folder_events.py; trials on both nodes of a
two-node cluster with the results on a shared storage path: tests/search/test_gpu_packing.py.)"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def asha_stops(rung_values: list[float], reduction_factor: int) -> list[bool]:
    """Which trials asynchronous ASHA stops at a rung, the trials arriving one at a time in this order: a trial is
    stopped when its value there is below the (1 - 1/reduction factor) percentile of the values recorded at that
    rung before it (ray.tune.schedulers.AsyncHyperBandScheduler's rule; the first trial is never stopped)."""
    return [bool(i) and value < np.nanpercentile(rung_values[:i], (1 - 1 / reduction_factor) * 100)
            for i, value in enumerate(rung_values)]


def test_asha_stops_replays_the_percentile_rule_by_hand() -> None:
    # The 66.7th percentile of [0.5] is 0.5 (0.4 stopped); of [0.5, 0.4] 0.4667 (0.6 goes on); of [0.5, 0.4, 0.6]
    # 0.5333 (0.52 stopped); of [0.5, 0.4, 0.6, 0.52] 0.52 (0.55 goes on).
    assert asha_stops([0.5, 0.4, 0.6, 0.52, 0.55], 3) == [False, True, False, True, False]


def test_end_to_end_writes_every_export_and_asha_stops_trials_early(finished_run, cli) -> None:
    # One trial at a time: asynchronous ASHA compares a trial at a rung with those that reached it before, so
    # with two at once which trials stop depends on the order they arrive there, and sometimes none does.
    run_dir, stdout = finished_run.run_dir, finished_run.stdout
    max_epochs, reduction_factor = int(finished_run.option("--max-epochs")), int(finished_run.option("--reduction-factor"))
    assert (finished_run.option("--num-samples"), max_epochs, finished_run.option("--grace-period"),
            finished_run.option("--max-concurrent")) == ("6", 3, "1", "1")
    assert run_dir.name.startswith("ecgnet-")
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}

    trials = cli.read_csv(run_dir / "trials.csv")
    assert len(trials) == 6 and set(trials["status"]) == {"TERMINATED"}
    for column in ("trial_id", "trial_number", "status", "epochs_run", "stopped_by_asha", "stopped_at_epoch",
                   "failures", "retries", "error", "family", "model/version", "model/stem_kernel", "model/width",
                   "model/dropout", "model/use_age_sex", "optim/lr", "optim/batch_size", "optim/schedule",
                   "best_epoch", "best_val_micro_f1", "best_val_macro_f1", "last_val_micro_f1", "last_val_loss",
                   "train_time_s", "params", "macs", "latency_ms_b1", "latency_ms_b64",
                   "peak_mem_mb"):
        assert column in trials.columns, column
    assert (trials["params"] > 0).all() and (trials["macs"] > trials["params"]).all()
    assert (trials["latency_ms_b1"] > 0).all() and (trials["peak_mem_mb"] > 0).all()
    assert sorted(trials["trial_number"]) == list(range(6))  # the study's numbers: one number per trial
    assert "optuna_trial_number" not in trials.columns
    stopped = trials[trials["stopped_by_asha"]]
    assert (stopped["epochs_run"] == 1).all() and (stopped["stopped_at_epoch"] == 1).all()  # the one rung: epoch 1
    assert (trials.loc[~trials["stopped_by_asha"], "epochs_run"] == max_epochs).all()

    epochs = cli.read_csv(run_dir / "epochs.csv")
    assert len(epochs) == trials["epochs_run"].sum()
    # Exactly the trials ASHA's rule stops, replayed on the epoch-1 values in the order the trials ran.
    in_order = trials.sort_values("trial_number")
    at_rung = epochs[epochs["epoch"] == 1].set_index("trial_id")["val_micro_f1"]
    expected = asha_stops(at_rung[in_order["trial_id"]].tolist(), reduction_factor)
    assert any(expected), "no trial fell below the rung's cutoff: this search no longer shows an early stop"
    assert in_order["stopped_by_asha"].tolist() == expected
    assert {"trial_id", "epoch", "train_loss", "val_loss", "val_micro_f1", "val_macro_f1", "val_macro_auc",
            "lr", "epoch_time_s", "node_id", "best_so_far_val_micro_f1"} <= set(epochs.columns)
    # What ASHA and TPE compare: each trial's running best, which Optuna records as the trial's value.
    for trial_id, trial_epochs in epochs.sort_values("epoch").groupby("trial_id"):
        assert trial_epochs["best_so_far_val_micro_f1"].tolist() == pytest.approx(
            trial_epochs["val_micro_f1"].cummax().tolist())
    study_values = sorted(t.value for t in cli.study_trials(run_dir))
    assert study_values == pytest.approx(sorted(trials["best_val_micro_f1"]))
    # Trials ASHA stopped are PRUNED for TPE (ranked below every complete trial), the rest COMPLETE.
    states = {t.number: t.state.name for t in cli.study_trials(run_dir)}
    expected = {int(row.trial_number): "PRUNED" if row.stopped_by_asha else "COMPLETE" for row in trials.itertuples()}
    assert states == expected

    best = cli.read_csv(run_dir / "best_configs.csv")
    assert list(best["rank"]) == [1, 2]
    ranked = trials.sort_values("best_val_micro_f1", ascending=False)["trial_id"].tolist()
    assert best["trial_id"].tolist() == ranked[:2]
    from ecg.train import TrialConfig

    config = TrialConfig.from_csv(run_dir / "best_configs.csv")
    assert config.family == "ecgnet" and config.optim.epochs == 3

    assert {"best_epoch", "params"} <= set(best.columns)
    test = cli.read_csv(run_dir / "test_results.csv")
    models = ["rank1", "rank2", "ensemble_topk", "ensemble_greedy"]
    assert test["model"].tolist() == [m for m in models for _ in range(3)]
    assert test["thresholds"].astype(str).tolist() == ["0.5", "global", "per_class"] * 4
    assert test.groupby("model")["chosen"].sum().to_dict() == {m: 1 for m in models}  # one rule per model
    assert {"test_micro_f1", "test_macro_f1", "test_macro_f1_present", "test_micro_precision", "test_micro_recall",
            "test_exact_match", "test_macro_auc", "cv_score", "val_micro_f1", "val_macro_f1", "best_epoch", "params",
            "n_test_records", "test_positives"} <= set(test.columns)
    at_half = test[test["thresholds"].astype(str) == "0.5"].set_index("model")
    assert at_half.loc["ensemble_greedy", "val_micro_f1"] >= at_half.loc["rank1", "val_micro_f1"] - 1e-9
    per_class = pd.read_csv(run_dir / "per_class.csv")
    assert {"model", "thresholds", "class", "f1", "precision", "recall", "support", "threshold"} <= set(per_class.columns)
    split = pd.read_csv(run_dir / "split.csv")
    assert len(split) == 120 and set(split["split"]) == {"train", "val", "test"}

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["seed"] == 0 and info["args"]["num_samples"] == 6
    assert {"torch", "ray", "optuna"} <= set(info["versions"]) and info["git"]["commit"]
    assert info["data"]["fingerprint"] and info["hardware"]["cpus"] >= 1
    assert info["study_trials"] == 6 and len(cli.study_trials(run_dir)) == 6
    assert info["search_constants"]["optim/epochs"] == 3 and "optim/lr" not in info["search_constants"]
    assert info["chosen_model"]["model"] in models and info["evaluation_device"] == "cpu"
    report = (run_dir / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 6 and "Ensemble members and weights" in report
    assert "Test results" in stdout and "ensemble" in stdout and stdout.strip().endswith(f"results in {run_dir}")

    # Only the best checkpoint of each trial is kept.
    for trial_dir in (run_dir / "tune").glob("train_trial_*"):
        assert len(list(trial_dir.glob("checkpoint_*"))) == 1
