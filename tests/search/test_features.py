"""Hand-made features end to end: a search whose trials sample model/features, the winners' test evaluation on
them, and `python -m ecg.train` retraining a winner that uses them. Slow: one tiny Ray run."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# The two ECGNet trials start from a warm-start file that fixes only model/features: one trial with no features
# and one with every feature set, side by side in one study (everything else is sampled).
ARGS = ("--space", "ecgnet", "--n-records", "120", "--cpus-per-trial", "1", "--seed", "2",
        "--num-samples", "2", "--max-epochs", "1", "--grace-period", "1", "--top-k", "2")


def test_trials_sample_features_winners_use_them_and_ecg_train_retrains_one(tmp_path, cli, ray_cluster) -> None:
    env = cli.env(ECG_CACHE_DIR=str(tmp_path / "cache"))
    starts = tmp_path / "features.csv"
    starts.write_text("family,model/features\necgnet,none\necgnet,both\n")
    # The search joins the session's Ray cluster (the features are computed by the driver, into its cache).
    proc = cli.launch(*ARGS, "--warm-start", str(starts), "--results-dir", str(tmp_path / "runs"),
                      "--address", ray_cluster.address, env={**ray_cluster.env, "ECG_CACHE_DIR": env["ECG_CACHE_DIR"]})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(tmp_path / "runs")
    trials = cli.read_csv(run_dir / "trials.csv")
    assert sorted(trials["model/features"]) == ["both", "none"]
    assert set(trials["status"]) == {"TERMINATED"} and (trials["epochs_run"] == 1).all()
    featured = trials.loc[trials["model/features"] == "both", "trial_id"].item()
    # The features were computed once, into the cache, for the run's 120 records.
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1

    # The winners' evaluation rebuilt each trial's inputs, its features included: scored on the validation records
    # at 0.5, each winner's best checkpoint gives its trial's best validation micro-F1 again.
    results = cli.read_csv(run_dir / "test_results.csv")
    at_half = results[results["model"].str.startswith("rank") & (results["thresholds"].astype(str) == "0.5")]
    best_val = trials.set_index("trial_id")["best_val_micro_f1"]
    assert sorted(at_half["trial_id"]) == sorted(trials["trial_id"])
    assert best_val[featured] > 0, "the featured trial predicts nothing at 0.5: the comparison below shows nothing"
    for row in at_half.itertuples():
        assert row.val_micro_f1 == pytest.approx(best_val[row.trial_id], abs=1e-6), row.model
    best = cli.read_csv(run_dir / "best_configs.csv")
    row = best.index[best["trial_id"] == featured].item()

    out = tmp_path / "retrained"
    retrain = subprocess.run([sys.executable, "-m", "ecg.train", "--config-csv", str(run_dir / "best_configs.csv"),
                              "--row", str(row), "--out", str(out)], cwd=cli.root, env=env, text=True,
                             capture_output=True, timeout=600, check=False)
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    assert cli.read_csv(out / "config.csv")["model/features"].item() == "both"
    metrics = cli.read_csv(out / "metrics.csv")
    assert len(metrics) == 1  # the trial's one epoch
    # The same config, records, split and features give the trial's validation score again.
    assert metrics["val_micro_f1"].item() == pytest.approx(
        trials.loc[trials["trial_id"] == featured, "best_val_micro_f1"].item(), abs=1e-6)
    assert (out / "test_metrics.csv").is_file()
