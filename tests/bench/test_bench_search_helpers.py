"""The pure functions of bench/bench_search.py (bench/search_analysis.py) on hand-made numbers: curves, ratios, rank correlation,
trial-start arithmetic, epoch calibration and nvidia-smi parsing. No Ray, no training."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "search_analysis.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_analysis", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_best_by_trial_epochs_follows_report_order_not_row_order(bench):
    # Two trials interleaved in time; rows given out of order.
    events = pd.DataFrame({
        "trial_id": ["b", "a", "a", "b", "a"],
        "at": [12.0, 10.0, 11.0, 15.0, 13.0],
        "val_micro_f1": [0.5, 0.2, 0.4, 0.7, 0.3],
    })
    curve = bench.best_so_far_by_trial_epochs(events)
    # Report order: a 0.2 (t10), a 0.4 (t11), b 0.5 (t12), a 0.3 (t13), b 0.7 (t15)
    assert curve["trial_epochs"].tolist() == [1, 2, 3, 4, 5]
    assert curve["best"].tolist() == [0.2, 0.4, 0.5, 0.5, 0.7]
    assert curve["wall_s"].tolist() == [0.0, 1.0, 2.0, 3.0, 5.0]
    assert bench.best_at(curve, "trial_epochs", 3) == 0.5
    assert bench.best_at(curve, "trial_epochs", 4.5) == 0.5
    assert math.isnan(bench.best_at(curve, "trial_epochs", 0))


def test_best_by_trials_uses_creation_order_and_skips_nan(bench):
    trials = pd.DataFrame({"trial_number": [3, 1, 2, 4], "best_val_micro_f1": [0.6, 0.3, np.nan, 0.5]})
    curve = bench.best_so_far_by_trials(trials)
    assert curve["trials"].tolist() == [1, 2, 3, 4]
    assert curve["best"].tolist() == [0.3, 0.3, 0.6, 0.6]


def test_overhead_and_trials_per_hour(bench):
    # 100 s of epoch compute on 2 slots: ideally 50 s; 55 s of wall time is 10% overhead.
    assert bench.overhead(55.0, 100.0, 2) == pytest.approx(0.10)
    assert bench.overhead(50.0, 100.0, 2) == pytest.approx(0.0)
    assert bench.overhead(103.0, 100.0, 1) == pytest.approx(0.03)
    assert bench.trials_per_hour(8, 240.0) == pytest.approx(120.0)


def test_rank_correlation_hand_made(bench):
    def epochs(early, final):
        rows = []
        for i, (e, f) in enumerate(zip(early, final)):
            rows += [{"trial_id": f"t{i}", "epoch": 1, "val_micro_f1": e},
                     {"trial_id": f"t{i}", "epoch": 2, "val_micro_f1": (e + f) / 2},
                     {"trial_id": f"t{i}", "epoch": 3, "val_micro_f1": f}]
        return pd.DataFrame(rows)

    assert bench.rank_correlation(epochs([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]), 1, 3) == (pytest.approx(1.0), 4)
    assert bench.rank_correlation(epochs([0.1, 0.2, 0.3, 0.4], [0.8, 0.7, 0.6, 0.5]), 1, 3) == (pytest.approx(-1.0), 4)
    # Ranks early (1, 2, 3, 4, 5) against final (2, 1, 4, 3, 5): d^2 = 1+1+1+1+0 = 4, rho = 1 - 6*4/(5*24) = 0.8
    rho, n = bench.rank_correlation(epochs([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.5, 0.8, 0.7, 0.9]), 1, 3)
    assert (rho, n) == (pytest.approx(0.8), 5)
    # The final epoch against itself (the last row of the per-epoch table) is a perfect ranking.
    assert bench.rank_correlation(epochs([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.5, 0.8, 0.7, 0.9]), 3, 3) == (pytest.approx(1.0), 5)


def test_rank_correlation_needs_trials_that_reached_both_epochs(bench):
    # A trial stopped at epoch 1 has no final value and is left out; two pairs are too few.
    frame = pd.DataFrame({"trial_id": ["a", "a", "b", "b", "c"], "epoch": [1, 3, 1, 3, 1],
                          "val_micro_f1": [0.1, 0.5, 0.2, 0.6, 0.3]})
    rho, n = bench.rank_correlation(frame, 1, 3)
    assert math.isnan(rho) and n == 2
    constant = pd.DataFrame({"trial_id": list("abcabc"), "epoch": [1, 1, 1, 3, 3, 3],
                             "val_micro_f1": [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]})
    assert math.isnan(bench.rank_correlation(constant, 1, 3)[0])


def test_slot_free_times_with_two_slots(bench):
    # Fit starts at 100; trials end at 130, 110, 150, 140 (creation order). Slots: {100, 100}.
    # t1 -> 100 (frees 130), t2 -> 100 (frees 110), t3 -> 110 (frees 150), t4 -> 130.
    assert bench.slot_free_times(100.0, [130.0, 110.0, 150.0, 140.0], 2) == [100.0, 100.0, 110.0, 130.0]
    # One slot: each trial waits for the previous one's end; a trial with no end frees its slot at once.
    assert bench.slot_free_times(0.0, [5.0, math.nan, 9.0], 1) == [0.0, 5.0, 5.0]


def test_trial_start_times_split_ray_and_setup(bench):
    trials = pd.DataFrame({
        "trial_id": ["b", "a"], "trial_number": [2, 1],
        "running_at": [14.5, 3.0], "ended_at": [20.0, 13.0],
        "first_time_total_s": [2.0, 4.0], "first_epoch_time_s": [1.5, 2.5],
    })
    out = bench.trial_start_times(trials, fit_start=1.0, concurrency=1)
    assert out["trial_id"].tolist() == ["a", "b"]
    assert out["slot_free_at"].tolist() == [1.0, 13.0]
    assert out["actor_s"].tolist() == pytest.approx([2.0, 1.5])
    assert out["setup_s"].tolist() == pytest.approx([1.5, 0.5])
    assert out["start_s"].tolist() == pytest.approx([3.5, 2.0])


def test_mean_epoch_of_the_first_trials(bench):
    # Trials 1-2 are cheap, trial 3 is expensive: calibrating 2-trial searches must ignore trial 3.
    events = pd.DataFrame({"trial_number": [1, 1, 2, 2, 3, 3], "epoch_time_s": [0.2, 0.4, 0.3, 0.3, 6.0, 6.0]})
    assert bench.mean_epoch_s(events, first_trials=2) == pytest.approx(0.3)
    assert bench.mean_epoch_s(events, first_trials=3) == pytest.approx(13.2 / 6)


def test_epochs_for_calibration(bench):
    assert bench.epochs_for(10.0, 0.8) == 12  # 12.5 rounds to even
    assert bench.epochs_for(60.0, 0.8) == 75
    assert bench.epochs_for(10.0, 30.0) == 1  # never below one epoch


def test_parse_nvidia_smi(bench):
    text = "0, 87, 10240\n1, 12, 512\nNVIDIA-SMI has failed\n\n0, 93, 10300\n"
    samples = bench.parse_nvidia_smi(text)
    assert samples["gpu"].tolist() == [0, 1, 0]
    assert samples["util_pct"].tolist() == [87.0, 12.0, 93.0]
    assert samples.groupby("gpu")["util_pct"].mean().to_dict() == {0: 90.0, 1: 12.0}
    assert samples["memory_mib"].max() == 10300.0


def _curves(*f1s):
    return [(np.array(f1), np.ones(len(f1))) for f1 in f1s]


def test_replay_asha_hand_made(bench):
    # Rungs at epochs 1 and 2 (rf 2, max_t 4), one slot. t0 runs alone through both rungs (nothing recorded
    # yet). t1 scores 0.2 < 0.5 at rung 1: stopped after 1 epoch. t2 passes rung 1 (0.6 >= the median 0.35 of
    # [0.5, 0.2]); at rung 2 its epoch F1 0.1 < 0.5 stops it, while its best so far 0.6 keeps it going.
    curves = _curves([0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2], [0.6, 0.1, 0.7, 0.8])
    asha = dict(grace_period=1, reduction_factor=2, max_t=4, concurrency=1)
    assert bench.replay_asha(curves, by_best_so_far=False, **asha) == (4 + 1 + 2, 2)
    assert bench.replay_asha(curves, by_best_so_far=True, **asha) == (4 + 1 + 4, 2)


def test_replay_asha_with_two_slots_follows_report_time(bench):
    # Two slots: t0 (5 s epochs) and t1 (1 s) start together. t1 reaches rung 1 first, with nothing recorded,
    # continues and ends at max_t (t = 2); t2 takes its slot and passes rung 1 at t = 3 (0.95 >= 0.9); t0
    # reaches rung 1 last (t = 5), below the 75th percentile of [0.9, 0.95], and stops after one epoch.
    curves = [(np.array([0.3, 0.3]), np.array([5.0, 5.0])), (np.array([0.9, 0.9]), np.array([1.0, 1.0])),
              (np.array([0.95, 0.95]), np.array([1.0, 1.0]))]
    spent, winner = bench.replay_asha(curves, grace_period=1, reduction_factor=4, max_t=2, concurrency=2,
                                      by_best_so_far=True)
    assert (spent, winner) == (1 + 2 + 2, 2)


def test_resampled_replays_of_identical_trials(bench):
    # Every trial the same curve: a tie with the cutoff passes, so ASHA stops nothing, spends all of FIFO's
    # epochs and always keeps a winner as good as the best.
    curves = _curves(*[[0.5, 0.6, 0.7, 0.8]] * 6)
    out = bench.resampled_replays(curves, draws=5, size=4, seed=0, grace_period=1, reduction_factor=2, max_t=4,
                                  concurrency=2, by_best_so_far=True)
    assert out == {"median_epoch_ratio": 1.0, "p90_epoch_ratio": 1.0, "winner_kept_share": 1.0}


def test_trial_curves_in_creation_order(bench):
    events = pd.DataFrame({"trial_number": [2, 1, 1, 2], "epoch": [1, 2, 1, 2], "val_micro_f1": [0.3, 0.2, 0.1, 0.4],
                           "epoch_time_s": [1.0, 2.0, 3.0, 4.0]})
    (f1_a, s_a), (f1_b, s_b) = bench.trial_curves(events)
    assert f1_a.tolist() == [0.1, 0.2] and s_a.tolist() == [3.0, 2.0]
    assert f1_b.tolist() == [0.3, 0.4] and s_b.tolist() == [1.0, 4.0]


def test_trials_csv_keeps_trial_ids_that_look_like_numbers(bench, tmp_path):
    # "9884e585" parses as a float (inf) unless read as text; the bench then lost the trial's epochs.
    pd.DataFrame({"trial_id": ["9884e585", "1adfe880"], "trial_number": [1, 2]}).to_csv(tmp_path / "trials.csv",
                                                                                      index=False)
    from search.exports import read_run_csv

    assert read_run_csv(tmp_path / "trials.csv")["trial_id"].tolist() == ["9884e585", "1adfe880"]
