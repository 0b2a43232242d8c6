"""End to end through launch.py and Ray (issue 16, parts 3 and 4): a multi-objective search under a parameter
budget, warm-started from the study's configurations; then a search warm-started from its best_configs.csv.
Slow: about a minute per run here."""
from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from ecg.selection import best_so_far

pytestmark = pytest.mark.slow

BUDGET = 40_000  # the small CPU ECGNets span about 20k to 120k parameters: some sampled configs go over


def test_multi_objective_search_under_a_budget_from_the_study_then_from_its_best_configs(tmp_path, cli,
                                                                                          ray_cluster) -> None:
    # Both searches join the session's Ray cluster (a local Ray start is tested by the per-space runs).
    joined = ("--address", ray_cluster.address)
    first = tmp_path / "first"
    proc = cli.launch(*cli.small, "--objectives", "val_micro_f1,params", "--max-params", str(BUDGET),
                      "--warm-start", "study", "--num-samples", "3", "--max-epochs", "1", "--top-k", "2",
                      "--results-dir", str(first), *joined, env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warm start: 1 of 21 configurations of study fit space ecgnet" in proc.stdout
    run_dir = cli.only_run(first)
    trials = cli.read_csv(run_dir / "trials.csv").sort_values("trial_number")

    # Over budget: rejected before training (no epoch trained), counted, and not a failure.
    over = trials["params"] > BUDGET
    assert over.any() and (~over).any(), trials[["trial_number", "params"]]
    assert (trials.loc[over, "status"] == "OVER_BUDGET").all() and (trials.loc[~over, "status"] == "TERMINATED").all()
    assert (trials.loc[over, "epochs_run"] == 0).all() and trials.loc[over, "best_val_micro_f1"].isna().all()
    assert trials.loc[over, "over_budget"].str.match(rf"params \d+ > {BUDGET}").all()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["over_budget"] == int(over.sum())
    assert info["trials"].get("ERROR", 0) == 0

    # The study's one CPU-expressible config ran first, marked.
    assert trials["warm_start"].fillna("").tolist() == ["study:ecgnet_v1", "", ""]
    assert trials.iloc[0]["model/version"] == "v1"

    # Optuna: two directions; the rejected trials PRUNED and infeasible, the trained ones COMPLETE with both values.
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert study.metric_names == [best_so_far("val_micro_f1"), "params"]
    by_ray_id = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for row in trials.itertuples():
        told = by_ray_id[row.trial_id]
        assert (told.constraints["max_params"] > 0) == (row.params > BUDGET)
        if row.status == "OVER_BUDGET":
            assert told.state == optuna.trial.TrialState.PRUNED
        else:
            assert told.state == optuna.trial.TrialState.COMPLETE
            assert told.values == pytest.approx([row.best_val_micro_f1, row.params])

    # pareto.csv: exactly the trained trials no other trained trial dominates, best micro-F1 first.
    front = cli.read_csv(run_dir / "pareto.csv")
    trained = trials[trials["status"] == "TERMINATED"]
    values = trained[["best_val_micro_f1", "params"]].to_numpy(float)
    dominated = [any(o[0] >= v[0] and o[1] <= v[1] and (o[0] > v[0] or o[1] < v[1]) for o in values) for v in values]
    assert set(front["trial_id"]) == set(trained.loc[~np.array(dominated), "trial_id"])
    assert front["best_val_micro_f1"].is_monotonic_decreasing
    # The winners come from the front, in its order.
    best = cli.read_csv(run_dir / "best_configs.csv")
    assert best["trial_id"].tolist() == front["trial_id"].tolist()[:2]
    assert "Pareto front (val_micro_f1,params)" in (run_dir / "report.html").read_text()

    # A second search starts from the first one's best_configs.csv: its rows are its first trials, unchanged.
    second = tmp_path / "second"
    proc = cli.launch(*cli.small, "--warm-start", str(run_dir / "best_configs.csv"), "--num-samples", str(len(best)),
                      "--max-epochs", "1", "--results-dir", str(second), *joined, env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = cli.read_csv(cli.only_run(second) / "trials.csv").sort_values("trial_number")
    assert again["warm_start"].tolist() == [f"best_configs.csv:row {i + 2}" for i in range(len(best))]
    sampled = [c for c in best.columns if c.startswith(("model/", "optim/lr", "optim/batch_size", "optim/schedule"))]
    for (_, row), (_, source) in zip(again.iterrows(), best.iterrows()):
        for column in sampled:
            assert str(row[column]) == str(source[column]), column
