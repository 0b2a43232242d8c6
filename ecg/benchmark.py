"""What the field's benchmarks report, beside the project's own F1 metrics (`ecg.metrics`).

- PTB-XL (Strodthoff et al. 2020): test macro-AUC with a bootstrap interval (`bootstrap_macro_auc`).
- PhysioNet/CinC 2021: the Challenge score (`ecg.challenge`), defined only for its scored classes
  (`task_scores` returns it when a dataset's class names are the Challenge's, nothing otherwise).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecg import challenge
from ecg.metrics import DEFAULT_THRESHOLD, macro_auc, register_label_score

# `val_challenge_score` as a search metric: thresholds and ensembles are then chosen for it (ecg.thresholds).
register_label_score("challenge_score", challenge.label_score)

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95


def task_scores(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD) -> dict[str, float]:
    """Scores a benchmark defines for its own classes only: today `challenge_score` (CinC 2021), present when
    the 26 scored classes are among `class_names`; an empty dict otherwise."""
    value = challenge.challenge_score(y_true, probs, class_names, thresholds)
    return {} if value is None else {"challenge_score": value}


def bootstrap_macro_auc(y_true: np.ndarray, probs: np.ndarray, *, n: int = BOOTSTRAP_RESAMPLES,
                        level: float = BOOTSTRAP_LEVEL, seed: int = 0,
                        max_draws_factor: int = 20) -> tuple[float, float, int]:
    """Percentile bootstrap interval of `ecg.metrics.macro_auc`: (low, high, resamples used).

    As the PTB-XL benchmark (`get_appropriate_bootstrap_samples`) does, records are drawn with replacement
    and a resample counts only when every class with positives and negatives in the full set still has
    both, so every resample averages the same classes. Draws stop after `max_draws_factor * n` (tiny test
    splits with rare classes); the interval then rests on fewer resamples (the third value says how many),
    and with none it is NaN. The benchmark's te_results.csv gives the 5% and 95% quantiles of 100
    resamples: `level=0.9, n=100` is that convention.
    """
    y_true = np.asarray(y_true, dtype=np.uint8)
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.shape != probs.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must both be [records, classes]")
    positives = y_true.sum(axis=0)
    defined = (positives > 0) & (positives < len(y_true))
    if not defined.any():
        return float("nan"), float("nan"), 0
    y_true, probs = y_true[:, defined], probs[:, defined]
    rng = np.random.default_rng(seed)
    values: list[float] = []
    for _ in range(max_draws_factor * n):
        index = rng.integers(0, len(y_true), len(y_true))
        counts = y_true[index].sum(axis=0)
        if ((counts > 0) & (counts < len(index))).all():
            values.append(macro_auc(y_true[index], probs[index]))
            if len(values) == n:
                break
    if not values:
        return float("nan"), float("nan"), 0
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), len(values)


def auc_interval(y_true: np.ndarray, probs: np.ndarray, *, prefix: str = "test_") -> dict[str, float]:
    """`{prefix}macro_auc_low/high` (bootstrap 95%) and the resamples used, as test_results.csv columns."""
    low, high, used = bootstrap_macro_auc(y_true, probs)
    return {f"{prefix}macro_auc_low": low, f"{prefix}macro_auc_high": high, f"{prefix}macro_auc_resamples": used}


def per_source_rows(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], record_ids: Sequence[str],
                    thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD):
    """CinC 2021: one row per record source (name prefix A, Q, I, S, HR, E, JS) with its Challenge score and
    F1s (`ecg.challenge.per_source`); an empty frame for any other vocabulary."""
    return challenge.per_source(y_true, probs, class_names, record_ids, thresholds)
