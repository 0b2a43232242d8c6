"""The input rate as a hyperparameter, end to end: `data/fs` sampled per trial, each trial trained on its rate's
records from the object store, the winners scored on the test split at their own rate, the report's per-rate
table, and `python -m ecg.train` retraining a winner at its rate. One Ray run (slow, about a minute here)."""
from __future__ import annotations

from ecg.run_folder import RunFolder, RunRecord

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ecg.data import HEFEI_LEADS, ECGDataset
from ecg.train.config import TrialConfig
from search.data import SplitData

# --sampler random with seed 4 draws data/fs 100 for the first GRU trial and 250 for the second (checked in
# the test: another sampler version would draw otherwise, and the test says so).
RATE_RUN = ("--space", "gru", "--n-records", "120", "--num-samples", "2", "--max-epochs", "1", "--sampler", "random",
            "--seed", "4", "--cpus-per-trial", "1", "--top-k", "2")


def records(fs: int, n: int = 6) -> ECGDataset:
    rng = np.random.default_rng(0)
    return ECGDataset(signals=rng.integers(-500, 500, (n, len(HEFEI_LEADS), 10 * fs), dtype=np.int16),
                      age=np.full(n, 60.0), sex=np.zeros(n), labels=np.eye(n, 2, dtype=np.uint8),
                      class_names=["A", "B"], record_ids=[str(i) for i in range(n)], fs=fs)


def test_a_split_carries_every_rate_and_a_trial_picks_its_own(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path))
    data = records(250)
    split = SplitData(train=data.subset(np.arange(4)), val=data.subset([4]), test=data.subset([5]),
                      fingerprint="f", source="s").with_rates([100, 250])
    assert sorted(split.others) == [100] and split.at_rate(None) is split and split.at_rate(250) is split
    assert split.at_rate(100).test.n_samples == 1000 and split.at_rate(100).test.record_ids == ["5"]
    trial_data = split.trial_data
    assert trial_data.at_rate(100).length == 1000 and trial_data.at_rate(100).fs == 100
    assert trial_data.at_rate(250).length == 2500
    with pytest.raises(ValueError, match=r"no records at 500 Hz in this run \(it has 100, 250 Hz\)"):
        trial_data.at_rate(500)


def test_a_config_names_its_rate_flat_or_nested() -> None:
    assert TrialConfig.from_flat({"family": "gru", "data/fs": 100}).fs == 100
    assert TrialConfig.from_nested({"family": "gru", "data": {"fs": 250}}).fs == 250
    assert TrialConfig.from_flat({"family": "gru"}).fs is None  # a config from before the rate was searched
    assert TrialConfig.from_flat({"family": "gru", "data/fs": float("nan")}).fs is None  # an empty CSV cell


@pytest.mark.slow
def test_each_trial_trains_and_is_scored_at_its_sampled_rate(tmp_path, cli, ray_cluster) -> None:
    results = tmp_path / "results"
    proc = cli.launch(*RATE_RUN, "--results-dir", str(results), "--address", ray_cluster.address, env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(results)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"]["fs"] == 250 and info["data"]["rates"] == [100, 250]

    trials = cli.read_csv(run_dir / "trials.csv")
    assert sorted(trials["data/fs"]) == [100, 250], "seed 4 no longer draws both rates: pick another seed"
    # Each trial trained on its own rate's records: 10 s at data/fs, and its segmentation cut for that length
    # (a GRU fed records of another length refuses them, so the epochs themselves prove it too).
    assert (trials["input_fs"] == trials["data/fs"]).all()
    assert (trials["input_length"] == 10 * trials["data/fs"]).all()
    for segmentation, fs in zip(trials["model/segmentation"], trials["data/fs"]):
        features, steps = map(int, segmentation.split("x"))
        assert features * steps == 10 * fs
    # The study holds what was drawn at the records' rate (250 Hz); trials.csv what was built.
    study = {t.user_attrs["ray_trial_id"]: t.params for t in cli.study_trials(run_dir)}
    for trial_id, segmentation, fs in zip(trials["trial_id"], trials["model/segmentation"], trials["data/fs"]):
        drawn_features, drawn_steps = map(int, study[trial_id]["model/segmentation"].split("x"))
        features, steps = map(int, segmentation.split("x"))
        assert steps == drawn_steps and features * 250 == drawn_features * fs  # the same seconds per step
    assert sorted(trials["trial_number"]) == [0, 1] and "optuna_trial_number" not in trials.columns
    # ... and says what it built where that differs (optuna-dashboard shows both).
    built = {t.user_attrs["ray_trial_id"]: t.user_attrs.get("built model/segmentation") for t in cli.study_trials(run_dir)}
    for trial_id, segmentation, fs in zip(trials["trial_id"], trials["model/segmentation"], trials["data/fs"]):
        assert built[trial_id] == (segmentation if fs != 250 else None)

    # The winners were scored on the test split at their own rates; the ensemble at both.
    best = cli.read_csv(run_dir / "best_configs.csv")
    assert "data/fs" in best.columns
    test = cli.read_csv(run_dir / "test_results.csv").drop_duplicates("model").set_index("model")
    for rank, row in best.set_index("rank").iterrows():
        assert str(test.loc[f"rank{rank}", "data_fs"]) == str(int(row["data/fs"]))
    assert test.loc["ensemble_topk", "data_fs"] == "100+250"
    assert "Input rate against cost" in (run_dir / "report.html").read_text()

    # The README's retrain command reproduces the winner at its rate: its records resampled the same way.
    out = tmp_path / "retrain"
    retrain = subprocess.run([sys.executable, "-m", "ecg.train", "--config-csv", str(run_dir / "best_configs.csv"),
                              "--row", "0", "--epochs", "1", "--out", str(out)], cwd=cli.root, env=cli.env(),
                             text=True, capture_output=True, timeout=600, check=False)
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    winner_fs = int(best["data/fs"][0])
    assert json.loads((out / "best" / "meta.json").read_text())["fs"] == winner_fs
    assert pd.read_csv(out / "config.csv")["data/fs"].tolist() == [winner_fs]
    epochs = cli.read_csv(run_dir / "epochs.csv")
    trial_epochs = epochs[epochs["trial_id"] == best["trial_id"][0]]
    assert pd.read_csv(out / "metrics.csv")["val_micro_f1"].tolist() == pytest.approx(
        trial_epochs["val_micro_f1"].tolist(), abs=1e-6)


def test_the_report_puts_each_rate_against_its_cost(tmp_path) -> None:
    from search.report import Run, rate_table, rates

    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "family": "gru", "data/fs": [100, 100, 250, 250],
                           "best_val_micro_f1": [0.5, 0.7, 0.6, 0.4], "train_time_s": [10.0, 40.0, 60.0, 30.0],
                           "epochs_run": [1, 2, 3, 1], "latency_ms_b1": [1.0, 3.0, 5.0, 7.0]})
    run = Run(folder=RunFolder(tmp_path), record=RunRecord(status="complete", space="gru", seed=0, args={"metric": "val_micro_f1"}), status="complete", trials=trials, epochs=pd.DataFrame(),
              test=pd.DataFrame(), per_class=pd.DataFrame())
    section = rates(run)
    assert len(section.figures) == 1 and "median_epoch_time_s" in section.html
    table = rate_table(trials, "best_val_micro_f1", maximise=True).set_index("data/fs")
    # Epoch times 10, 20 s at 100 Hz and 20, 30 s at 250 Hz: medians 15 and 25.
    assert table.loc[100, "max_best_val_micro_f1"] == pytest.approx(0.7)
    assert table.loc[250, "max_best_val_micro_f1"] == pytest.approx(0.6)
    assert table.loc[100, "median_best_val_micro_f1"] == pytest.approx(0.6)
    assert table.loc[100, "median_epoch_time_s"] == pytest.approx(15) and table.loc[250, "median_epoch_time_s"] == 25
    assert table.loc[250, "median_latency_ms_b1"] == pytest.approx(6) and list(table["trials"]) == [2, 2]
    assert rate_table(trials, "best_val_micro_f1", maximise=False).loc[0, "min_best_val_micro_f1"] == 0.5
    assert rates(Run(folder=RunFolder(tmp_path), record=RunRecord(status="complete", space="gru", seed=0, args={}), status="complete", trials=trials.drop(columns="data/fs"), epochs=pd.DataFrame(),
                     test=pd.DataFrame(), per_class=pd.DataFrame())) is None  # a run from before data/fs
