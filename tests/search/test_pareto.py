"""The Pareto front (search.pareto) on hand-made trials, and a rejected trial as the searcher tells it to Optuna."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest

from ecg.train.costs import Budget
from search.pareto import front, non_dominated, objective_names


def test_non_dominated_on_a_hand_made_case() -> None:
    # (micro-F1 max, params min): b dominates c (better F1, fewer params); d ties a exactly (both kept);
    # e has the best F1, f the fewest params: both on the front whatever else they cost.
    values = np.array([[0.70, 5000], [0.80, 20000], [0.75, 30000], [0.70, 5000], [0.90, 90000], [0.40, 1000]])
    assert non_dominated(values, [True, False]).tolist() == [True, True, False, True, True, True]
    # Both minimised: only the rows no other beats on both columns.
    assert non_dominated(np.array([[1, 2], [2, 1], [2, 2], [3, 3]]), [False, False]).tolist() == [True, True, False, False]


def test_front_keeps_trained_trials_and_orders_them_by_the_first_objective() -> None:
    trials = pd.DataFrame({
        "trial_id": list("abcdef"), "trial_number": range(1, 7), "warm_start": ["study:ecgnet_v1", "", "", "", "", ""],
        "status": ["TERMINATED", "TERMINATED", "TERMINATED", "OVER_BUDGET", "ERROR", "TERMINATED"],
        "best_val_micro_f1": [0.70, 0.80, 0.75, math.nan, 0.99, 0.60],
        "params": [5000, 20000, 30000, 900000, 10, 5000], "family": ["ecgnet"] * 6, "model/width": [4, 8, 8, 8, 4, 4],
    })
    names = objective_names("val_micro_f1,params", "val_micro_f1")
    assert names == [("best_val_micro_f1", "max"), ("params", "min")]
    result = front(trials, names)
    # c is dominated by b, f by a; d was never trained and e errored: neither may be a winner.
    assert result["trial_id"].tolist() == ["b", "a"]
    assert list(result.columns[:6]) == ["trial_id", "trial_number", "warm_start", "best_val_micro_f1", "params",
                                        "family"]
    assert objective_names("val_loss,latency_ms,macs", "val_loss") == [
        ("best_val_loss", "min"), ("latency_ms_b1", "min"), ("macs", "min")]


def test_budget_says_why_and_how_far_over() -> None:
    budget = Budget(max_params=100_000, max_latency_ms=2.0)
    assert budget.exceeded({"params": 100_000, "latency_ms_b1": 2.0}) is None  # the bound itself is within
    assert budget.exceeded({"params": 150_000, "latency_ms_b1": 3.0}) == "params 150000 > 100000; latency_ms 3 > 2"
    assert budget.violations({"params": 150_000, "latency_ms_b1": 1.0}) == {"max_params": 0.5, "max_latency_ms": -0.5}
    assert not Budget() and Budget(max_params=1)


def test_a_rejected_trial_is_told_pruned_and_infeasible(tmp_path) -> None:
    from search.tuner import OVER_BUDGET_ATTR, OptunaSearchTellingStops

    def space(trial: optuna.Trial) -> dict:
        return {"x": trial.suggest_int("x", 1, 10)}

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    searcher = OptunaSearchTellingStops(space=space, metric=["best_so_far_val_micro_f1", "params"],
                                        mode=["max", "min"], study_name="s", storage=storage, max_epochs=2,
                                        budget=Budget(max_params=1000), sampler=optuna.samplers.TPESampler(seed=0))
    for trial_id in ("rejected", "trained"):
        searcher.suggest(trial_id)
    searcher.on_trial_complete("rejected", {"over_budget": "params 5000 > 1000", "params": 5000.0, "epoch": 0,
                                            "best_so_far_val_micro_f1": math.nan, "training_iteration": 1})
    searcher.on_trial_result("trained", {"best_so_far_val_micro_f1": 0.5, "params": 800.0, "training_iteration": 1})
    searcher.on_trial_complete("trained", {"best_so_far_val_micro_f1": 0.6, "params": 800.0, "training_iteration": 2})
    rejected, trained = optuna.load_study(study_name="s", storage=storage).trials
    assert rejected.state == optuna.trial.TrialState.PRUNED and rejected.values is None
    assert rejected.constraints == {"max_params": 4.0} and rejected.user_attrs[OVER_BUDGET_ATTR] == "params 5000 > 1000"
    assert trained.state == optuna.trial.TrialState.COMPLETE and trained.values == [0.6, 800.0]
    assert trained.constraints == {"max_params": pytest.approx(-0.2)}


def test_winners_are_drawn_from_the_front_in_its_order() -> None:
    from search.exports import TrialRecord, TrialTable
    from search.winners import ranked_trials

    def record(trial_id: str, f1: float, params: int, status: str = "TERMINATED", over: str | None = None) -> TrialRecord:
        epochs = pd.DataFrame({"epoch": [1], "val_micro_f1": [f1], "params": [params], "over_budget": [over]})
        return TrialRecord(trial_id, ord(trial_id) - 96, status, {"family": "ecgnet"}, epochs)

    table = TrialTable([record("a", 0.7, 5000), record("b", 0.8, 20000), record("c", 0.75, 30000),
                        record("d", math.nan, 90000, over="params 90000 > 50000")])
    trials = pd.DataFrame({"trial_id": list("abcd"), "status": ["TERMINATED"] * 3 + ["OVER_BUDGET"],
                           "best_val_micro_f1": [0.7, 0.8, 0.75, math.nan], "params": [5000, 20000, 30000, 90000]})
    assert [r.trial_id for r in ranked_trials(table, trials, metric="val_micro_f1", mode="max")] == ["b", "c", "a"]
    assert [r.trial_id for r in ranked_trials(table, trials, metric="val_micro_f1", mode="max",
                                              objectives="val_micro_f1,params")] == ["b", "a"]
