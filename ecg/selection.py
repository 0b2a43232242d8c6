"""The selection metric of a run: the one validation metric that decides which epoch a trial keeps, what the
plateau schedule and early stopping watch, ASHA's and Optuna's value, and the ranking of winners.

Kept free of heavy imports so that `launch.py --help` can list the choices without loading torch.
"""
from __future__ import annotations

import math

SELECTION_METRICS = ("val_micro_f1", "val_macro_f1", "val_macro_auc", "val_exact_match", "val_loss",
                     "val_challenge_score")  # the last only with --task cinc2021 (ecg.challenge)


# The costs a search may minimise next to its selection metric (--objectives): objective name -> the trial's
# reported column (ecg.train.costs). Latency is per record at batch 1: what one recording on a device costs.
COST_OBJECTIVES = {"params": "params", "macs": "macs", "latency_ms": "latency_ms_b1"}


def metric_mode(metric: str) -> str:
    """"min" for a loss, "max" for every score."""
    return "min" if metric.endswith("loss") else "max"


def is_better(value: float, best: float | None, metric: str) -> bool:
    """Whether `value` beats `best` (None or NaN: nothing yet) for `metric`; a NaN value never does."""
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value < best if metric_mode(metric) == "min" else value > best


def best_so_far(metric: str) -> str:
    """The name under which each epoch reports the trial's best `metric` up to that epoch.

    A trial keeps its best epoch, so that value is what the trial is worth at any epoch; the single epoch's
    value is noisy on small validation splits (a model that predicts no label at all for an epoch scores 0),
    and judged on it ASHA stops eventual winners far more often (bench/bench_search.py, section 1c).
    """
    return f"best_so_far_{metric}"
