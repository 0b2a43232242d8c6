"""The Pareto front of a multi-objective search (`--objectives`): the trials no other trial beats on every
objective at once. Computed from trials.csv's columns, so the front, pareto.csv, the report and the winners
all see the same trials."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ecg.flat_config import config_columns

# What pareto.csv shows besides the objectives and the config.
ID_COLUMNS = ("trial_id", "trial_number", "warm_start", "best_epoch")


def non_dominated(values: np.ndarray, maximise: list[bool]) -> np.ndarray:
    """Mask of the rows of `values` [n, k] that no other row dominates (at least as good on every objective,
    better on one); `maximise[j]` says which way objective j is better. Equal rows are all kept."""
    signed = np.where(maximise, -1.0, 1.0) * np.asarray(values, dtype=float)  # every objective minimised
    keep = np.ones(len(signed), dtype=bool)
    for i, row in enumerate(signed):
        dominated_by = np.all(signed <= row, axis=1) & np.any(signed < row, axis=1)
        keep[i] = not dominated_by.any()
    return keep


def objective_names(objectives: str, metric: str) -> list[tuple[str, str]]:
    """trials.csv's column and mode for each objective of `--objectives` ("val_micro_f1,params": the trial's
    best val_micro_f1, then its parameter count)."""
    from ecg.selection import COST_OBJECTIVES, metric_mode

    names = objectives.split(",")
    return [(f"best_{metric}", metric_mode(metric)), *((COST_OBJECTIVES[n], "min") for n in names[1:])]


def front(trials: pd.DataFrame, objectives: list[tuple[str, str]]) -> pd.DataFrame:
    """The front of the trials that trained (status TERMINATED, every objective known), best first by the first
    objective: what pareto.csv holds and the order the winners are drawn in."""
    columns = [c for c, _ in objectives]
    if not len(trials) or not set(columns) <= set(trials.columns):
        return pd.DataFrame(columns=[*ID_COLUMNS, *columns])
    trained = trials[(trials["status"] == "TERMINATED")].dropna(subset=columns)
    mask = non_dominated(trained[columns].to_numpy(dtype=float), [m == "max" for _, m in objectives])
    first, first_mode = objectives[0]
    on_front = trained[mask].sort_values([first, *columns[1:]], ascending=[first_mode == "min", *[True] * (len(columns) - 1)])
    shown = [c for c in ID_COLUMNS if c in on_front] + columns
    rest = [c for c in config_columns(on_front.columns) if c not in shown]
    return on_front[shown + rest].reset_index(drop=True)
