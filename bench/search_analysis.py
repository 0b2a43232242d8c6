"""The analysis of bench/bench_search.py as pure functions: best-so-far curves, ratios, rank correlation,
ASHA replays, trial-start arithmetic, epoch calibration, nvidia-smi parsing (tests/bench/test_bench_search_helpers.py
checks them on hand-made numbers). No Ray, no training."""
from __future__ import annotations

import heapq
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

METRIC = "val_micro_f1"
WINNER_F1_GAP = 0.01  # a winner within this much of the best final F1 counts as the same result



def best_so_far_by_trial_epochs(events: pd.DataFrame, value: str = METRIC) -> pd.DataFrame:
    """Best `value` found against trial-epochs spent: `events` has one row per reported epoch with its report
    time `at`; rows are taken in report order. Columns: trial_epochs (1, 2, ...), wall_s (seconds since the
    first report), best."""
    ordered = events.sort_values("at", kind="stable").reset_index(drop=True)
    best = ordered[value].cummax()
    return pd.DataFrame({"trial_epochs": np.arange(1, len(ordered) + 1), "wall_s": ordered["at"] - ordered["at"].min(),
                         "best": best.to_numpy()})


def best_so_far_by_trials(trial_best: pd.DataFrame, value: str = f"best_{METRIC}") -> pd.DataFrame:
    """Best `value` after each number of trials, trials in creation order (`trial_number`). A trial that
    reported nothing (NaN) counts as a trial but does not change the best. Columns: trials, best."""
    ordered = trial_best.sort_values("trial_number", kind="stable")
    best = ordered[value].astype(float).cummax().ffill()
    return pd.DataFrame({"trials": np.arange(1, len(ordered) + 1), "best": best.to_numpy()})


def best_at(curve: pd.DataFrame, x_column: str, x: float) -> float:
    """The curve's best value once `x` units were spent (NaN before its first point)."""
    reached = curve[curve[x_column] <= x]
    return float(reached["best"].iloc[-1]) if len(reached) else math.nan


def overhead(fit_time_s: float, compute_s: float, concurrency: int) -> float:
    """Ray's overhead as a fraction: wall time against the ideal sum(compute) / concurrency."""
    ideal = compute_s / concurrency
    return fit_time_s / ideal - 1.0


def trials_per_hour(n_trials: int, wall_s: float) -> float:
    return 3600.0 * n_trials / wall_s


def rank_correlation(epochs: pd.DataFrame, early_epoch: int, final_epoch: int, value: str = METRIC) -> tuple[float, int]:
    """Spearman's rho, over trials that reported both epochs, of `value` at `early_epoch` with `value` at
    `final_epoch`; and how many trials that was. NaN when fewer than 3 trials or one side is constant."""
    from scipy.stats import spearmanr

    wide = epochs.pivot_table(index="trial_id", columns="epoch", values=value, aggfunc="last")
    if early_epoch not in wide or final_epoch not in wide:
        return math.nan, 0
    both = wide[early_epoch].notna() & wide[final_epoch].notna()
    early, final = wide.loc[both, early_epoch], wide.loc[both, final_epoch]
    if len(early) < 3 or early.nunique() < 2 or final.nunique() < 2:
        return math.nan, len(early)
    return float(spearmanr(early, final).statistic), len(early)


def replay_asha(curves: Sequence[tuple[np.ndarray, np.ndarray]], *, grace_period: int, reduction_factor: int,
                max_t: int, concurrency: int, by_best_so_far: bool) -> tuple[int, int]:
    """Ray's asynchronous ASHA (`ASHAScheduler`: at each rung a trial stops when its value is below the
    (1 - 1/rf) percentile of the values recorded there so far) replayed on finished FIFO trials: `curves`
    holds each trial's per-epoch F1 and epoch seconds, in creation order; trials start in that order on
    `concurrency` slots. Rungs compare the epoch's F1, or the trial's best F1 so far. Returns the trial-epochs
    spent and the index of the trial with the best F1 seen (ASHA's winner)."""
    rungs: dict[int, list[float]] = {}
    rung = grace_period
    while rung < max_t:
        rungs[rung] = []
        rung *= reduction_factor
    events: list[tuple[float, int, int]] = []
    waiting = list(range(len(curves)))[::-1]
    for _ in range(min(concurrency, len(curves))):
        trial = waiting.pop()
        heapq.heappush(events, (float(curves[trial][1][0]), trial, 1))
    spent, seen = 0, {}
    while events:
        now, trial, epoch = heapq.heappop(events)
        f1 = np.asarray(curves[trial][0], dtype=float)
        spent += 1
        seen[trial] = float(np.nanmax(f1[:epoch]))
        value = seen[trial] if by_best_so_far else float(f1[epoch - 1])
        stop = epoch >= min(max_t, len(f1))
        if epoch in rungs:
            recorded = rungs[epoch]
            if recorded and value < np.nanpercentile(recorded, 100 * (1 - 1 / reduction_factor)):
                stop = True
            recorded.append(value)
        if stop and waiting:
            nxt = waiting.pop()
            heapq.heappush(events, (now + float(curves[nxt][1][0]), nxt, 1))
        elif not stop:
            heapq.heappush(events, (now + float(curves[trial][1][epoch]), trial, epoch + 1))
    return spent, max(seen, key=seen.get)


def resampled_replays(curves: Sequence[tuple[np.ndarray, np.ndarray]], *, draws: int, size: int, seed: int,
                      **asha: Any) -> dict[str, float]:
    """`replay_asha` on `draws` random draws of `size` of `curves` (random order each time): the median and
    90th percentile of ASHA's trial-epochs / FIFO's, and the share of draws whose ASHA winner's final best F1
    is within 0.01 of the draw's best (what FIFO would find)."""
    rng = np.random.default_rng(seed)
    ratios, kept = [], []
    for _ in range(draws):
        drawn = [curves[i] for i in rng.choice(len(curves), size=min(size, len(curves)), replace=False)]
        spent, winner = replay_asha(drawn, **asha)
        full = sum(min(asha["max_t"], len(f1)) for f1, _ in drawn)
        ratios.append(spent / full)
        best = max(float(np.nanmax(f1)) for f1, _ in drawn)
        kept.append(best - float(np.nanmax(drawn[winner][0])) <= WINNER_F1_GAP)
    return {"median_epoch_ratio": float(np.median(ratios)), "p90_epoch_ratio": float(np.quantile(ratios, 0.9)),
            "winner_kept_share": float(np.mean(kept))}


def trial_curves(events: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per trial, in creation order: (F1 by epoch, epoch seconds by epoch), as `replay_asha` takes them."""
    ordered = events.sort_values(["trial_number", "epoch"])
    return [(group[METRIC].to_numpy(), group["epoch_time_s"].to_numpy())
            for _, group in ordered.groupby("trial_number", sort=True)]


def slot_free_times(fit_start: float, trial_ends: Sequence[float], concurrency: int) -> list[float]:
    """When each trial (in creation order) got its slot: `concurrency` slots are free at `fit_start`; a trial
    takes the slot that frees first and frees it again at its end (`trial_ends[i]`, NaN: at once)."""
    free = [fit_start] * concurrency
    heapq.heapify(free)
    placed = []
    for end in trial_ends:
        slot = heapq.heappop(free)
        placed.append(slot)
        heapq.heappush(free, slot if math.isnan(end) else max(end, slot))
    return placed


def trial_start_times(trials: pd.DataFrame, fit_start: float, concurrency: int) -> pd.DataFrame:
    """Per trial: `slot_free_at` (see slot_free_times), Ray's part `actor_s` (slot free -> actor running),
    the trainable's `setup_s` (running -> first training step) and their sum `start_s`.

    `trials` needs trial_number, running_at and ended_at (epoch seconds) and, from the first epoch,
    time_total_s (Ray: from the trainable's first call to the first report) and epoch_time_s (fit: the
    epoch's own work), so the first step came `time_total_s - epoch_time_s` after the actor was running.
    """
    ordered = trials.sort_values("trial_number", kind="stable").reset_index(drop=True)
    free = slot_free_times(fit_start, ordered["ended_at"].astype(float).tolist(), concurrency)
    out = ordered[["trial_id", "trial_number"]].copy()
    out["slot_free_at"] = free
    out["actor_s"] = ordered["running_at"] - out["slot_free_at"]
    out["setup_s"] = ordered["first_time_total_s"] - ordered["first_epoch_time_s"]
    out["start_s"] = out["actor_s"] + out["setup_s"]
    return out


def mean_epoch_s(events: pd.DataFrame, *, first_trials: int) -> float:
    """Mean `epoch_time_s` of the first `first_trials` trials (creation order): the configs a random search
    with the same seed draws first, whose cost can differ from the whole search's mean several-fold."""
    # The smallest numbers: trials are numbered from 0 (the study's number), from 1 in runs made before.
    first = events[events["trial_number"].isin(sorted(events["trial_number"].unique())[:first_trials])]
    return float(first["epoch_time_s"].mean())


def epochs_for(target_s: float, epoch_s: float, *, minimum: int = 1) -> int:
    """Whole epochs that make a trial of about `target_s` seconds when one epoch takes `epoch_s`."""
    return max(minimum, int(round(target_s / epoch_s)))


def parse_nvidia_smi(text: str) -> pd.DataFrame:
    """Lines of `nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits`
    -> columns gpu, util_pct, memory_mib (lines that are not three numbers are skipped)."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        try:
            rows.append((int(parts[0]), float(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return pd.DataFrame(rows, columns=["gpu", "util_pct", "memory_mib"])
