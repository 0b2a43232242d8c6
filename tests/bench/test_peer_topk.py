"""bench/peer_topk.py's reading of run folders and its tables, on hand-made test_results.csv files: no Ray."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from peer_topk import gather, summarise  # noqa: E402


def _run(runs: Path, seed: int, rows: list[tuple]) -> None:
    run = runs / str(seed) / f"all-2026120{seed}-000000"
    run.mkdir(parents=True)
    pd.DataFrame(rows, columns=["model", "trial_id", "thresholds", "chosen", "cv_score", "val_micro_f1",
                                "test_micro_f1"]).to_csv(run / "test_results.csv", index=False)


def test_gather_keeps_threshold_05_and_the_chosen_rules_and_summarise_scores_each_rule(tmp_path) -> None:
    runs = tmp_path / "runs"
    for seed, (t1, t2, t3, topk, greedy) in enumerate([(0.90, 0.94, 0.92, 0.95, 0.93), (0.80, 0.84, 0.82, 0.85, 0.83)]):
        _run(runs, seed, [
            ("rank1", "a", "0.5", True, 0.95, 0.96, t1), ("rank1", "a", "global", False, 0.94, 0.97, 0.5),
            ("rank2", "b", "0.5", True, 0.94, 0.95, t2), ("rank3", "c", "0.5", True, 0.93, 0.94, t3),
            ("ensemble_topk", "a+b+c", "0.5", False, 0.96, 0.955, topk),
            ("ensemble_topk", "a+b+c", "per_class", True, 0.97, 0.96, 0.99),  # the run's choice: best cv_score
            ("ensemble_greedy", "a", "0.5", True, 0.95, 0.96, greedy)])
    (runs / "1" / "stopped-run").mkdir()  # a run without test_results.csv (stopped) is skipped
    rows = gather(runs)
    assert len(rows) == 12 and set(rows["seed"]) == {0, 1}
    assert not ((rows["thresholds"] == "global") & ~rows["chosen_rule"]).any()  # other rules than 0.5 left out
    text = summarise(rows)
    assert "| 1 | 2 | 0.9600 | 0.8500 |" in text  # rank 1: val 0.96 both seeds, test (0.90 + 0.80) / 2
    assert "| one of the top 3 at random (their mean) | 0.920 0.820 | 0.8700 |" in text
    assert "| ensemble of the top k (0.5) | 0.950 0.850 | 0.9000 |" in text
    assert "| the run's chosen model (its own thresholds) | 0.990 0.990 | 0.9900 |" in text
    assert "seed 0 -0.50, seed 1 -0.50" in text  # val orders a > b > c, test b > c > a: Spearman -0.5


@pytest.mark.parametrize("budget, expected", [(7.0, "6.85"), (14.0, "13.85")])
def test_each_run_gets_the_budget_less_the_start(budget, expected, monkeypatch, tmp_path) -> None:
    import peer_topk

    seen = []
    monkeypatch.setattr(peer_topk.subprocess, "call", lambda command, **kw: seen.append(command) or 0)
    peer_topk.run_seed("all", 3, budget, tmp_path)
    command = seen[0]
    assert command[command.index("--time-budget") + 1] == expected
    assert command[command.index("--seed") + 1] == "3" and command[command.index("--top-k") + 1] == "10"
