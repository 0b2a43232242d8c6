"""The arithmetic of bench_peer.py: best-so-far curves and the protocol's summary (pure functions, no I/O).

The summary compares `this_system` with each peer on the seeds both have, per space x budget and over all of
them: the mean of each method, the paired difference (this system minus the peer, seed by seed) with a
percentile bootstrap 90% interval over the seeds, and the wins, ties and losses per seed.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

METRIC = "val_micro_f1"
THIS = "this_system"
PIECE = ["seed", "space", "budget_min"]  # one piece of the protocol: all methods side by side
TIE = 1e-6  # the peers' values are logged to 6 decimals: closer than this is the same score
SEEDS_COLUMNS = ["method", "seed", "budget_min", "space", "best_val", "test_micro_f1", "first_epoch_s", "trials",
                 "trial_epochs", "load_avg", "retrained_val_micro_f1", "best_at_50pct", "winner", "cpu_share",
                 "launch_order", "records", "epochs", "finished_utc", "ray_start_s", "median_epoch_s", "cpu_s",
                 "throttled_s", "code"]


def best_curve(events: pd.DataFrame) -> pd.DataFrame:
    """Best value so far against time: `events` has one row per reported epoch with `t` (seconds since the
    method was launched) and METRIC. Columns t, best; NaN values never count."""
    ordered = events.dropna(subset=[METRIC]).sort_values("t", kind="stable")
    return pd.DataFrame({"t": ordered["t"].to_numpy(), "best": ordered[METRIC].cummax().to_numpy()})


def best_by(curve: pd.DataFrame, t: float) -> float:
    """The curve's best once `t` seconds had passed (NaN before its first point)."""
    reached = curve[curve["t"] <= t]
    return float(reached["best"].iloc[-1]) if len(reached) else math.nan


def winner(events: pd.DataFrame, budget_s: float) -> tuple[str | None, float]:
    """The trial with the best epoch reported within the budget, and that value (the first to reach it)."""
    within = events[events["t"] <= budget_s].dropna(subset=[METRIC]).sort_values("t", kind="stable")
    if not len(within):
        return None, math.nan
    row = within.loc[within[METRIC].idxmax()]
    return str(row["trial"]), float(row[METRIC])


def bootstrap_mean_interval(values: Iterable[float], level: float = 0.9, resamples: int = 10_000,
                            seed: int = 0) -> tuple[float, float, float]:
    """Mean of `values` and its percentile bootstrap interval at `level` (NaNs dropped; all NaN: NaNs)."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if not len(data):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(data.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def method_means(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per space x budget x method: seeds, mean best val, mean (and sd) retrained test micro-F1, first epoch,
    trials, trial-epochs, CPU seconds and load average."""
    seeds = seeds.assign(cpu_s=seeds["cpu_s"] if "cpu_s" in seeds else math.nan)
    groups = seeds.groupby(["space", "budget_min", "method"], sort=True)
    return groups.agg(seeds=("seed", "nunique"), best_val=("best_val", "mean"),
                      test_micro_f1=("test_micro_f1", "mean"), test_sd=("test_micro_f1", "std"),
                      first_epoch_s=("first_epoch_s", "mean"), trials=("trials", "mean"),
                      trial_epochs=("trial_epochs", "mean"), cpu_s=("cpu_s", "mean"),
                      load_avg=("load_avg", "mean")).reset_index()


def paired(seeds: pd.DataFrame, metric: str = "test_micro_f1", level: float = 0.9) -> pd.DataFrame:
    """this_system minus each peer on `metric`, paired by seed x space x budget, per space x budget and over
    all ("all", "all"): seeds, mean difference with its bootstrap interval, wins / ties / losses."""
    wide = seeds.pivot_table(index=PIECE, columns="method", values=metric, aggfunc="first")
    if THIS not in wide:
        return pd.DataFrame()
    rows = []
    scopes = [((space, budget), wide.xs((space, budget), level=("space", "budget_min")))
              for space, budget in sorted({(s, b) for _, s, b in wide.index})]
    scopes.append((("all", "all"), wide))
    for (space, budget), table in scopes:
        for peer in [m for m in table.columns if m != THIS]:
            both = table[[THIS, peer]].dropna()
            diff = (both[THIS] - both[peer]).to_numpy()
            mean, low, high = bootstrap_mean_interval(diff, level=level)
            rows.append({"space": space, "budget_min": budget, "peer": peer, "metric": metric, "pairs": len(both),
                         "mean_diff": mean, f"ci{int(level * 100)}_low": low, f"ci{int(level * 100)}_high": high,
                         "wins": int((diff > TIE).sum()), "ties": int((np.abs(diff) <= TIE).sum()),
                         "losses": int((diff < -TIE).sum())})
    return pd.DataFrame(rows)


def done_pieces(seeds: pd.DataFrame) -> set[tuple[int, str, float]]:
    """The pieces (seed, space, budget) seeds.csv already holds."""
    return {(int(s), str(sp), float(b)) for s, sp, b in seeds[PIECE].drop_duplicates().itertuples(index=False)}


def protocol_command(seeds: pd.DataFrame, methods: Iterable[str] = ()) -> str:
    """The call that runs, one piece at a time, every piece seeds.csv holds: its seeds, budgets and spaces, and
    `--methods` when it holds fewer than `methods` (all of them)."""
    budgets = " ".join(f"{b:g}" for b in sorted(set(seeds["budget_min"].astype(float))))
    spaces = " ".join(dict.fromkeys(seeds["space"].astype(str)))  # in the order the pieces first ran them
    methods = list(methods)
    ran = [m for m in methods if m in set(seeds["method"])]
    return (f"python bench/bench_peer.py --seeds {int(seeds['seed'].max()) + 1} --budgets {budgets} "
            f"--spaces {spaces} --pieces 1" + (f" --methods {' '.join(ran)}" if len(ran) < len(methods) else ""))


def mean_curves(curves: pd.DataFrame, grid: int = 60) -> pd.DataFrame:
    """Per space x budget x method, the best-so-far curve averaged over seeds on a grid of `grid` + 1 times
    (a seed's curve counts from its first epoch on; before it, that seed has no value and the mean waits)."""
    rows = []
    for (space, budget, method), group in curves.groupby(["space", "budget_min", "method"], sort=True):
        times = np.linspace(0, float(budget) * 60, grid + 1)
        per_seed = []
        for _, seed_curve in group.groupby("seed"):
            per_seed.append([best_by(seed_curve, t) for t in times])
        values = np.array(per_seed, dtype=float)
        complete = ~np.isnan(values).any(axis=0)
        mean = np.where(complete, np.nanmean(np.where(np.isnan(values), 0, values), axis=0), np.nan)
        rows += [{"space": space, "budget_min": budget, "method": method, "t": t, "mean_best": m,
                  "seeds": len(per_seed)} for t, m in zip(times, mean)]
    return pd.DataFrame(rows)
