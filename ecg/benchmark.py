"""What the field's benchmarks report, beside the project's own F1 metrics (`ecg.metrics`).

- PTB-XL (Strodthoff et al. 2020): test macro-AUC with a bootstrap interval (`bootstrap_macro_auc`).
- PhysioNet/CinC 2021: the Challenge score (`ecg.challenge`), defined only for its scored classes
  (`task_scores` returns it when a dataset's class names are the Challenge's, nothing otherwise).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ecg import challenge
from ecg.metrics import DEFAULT_THRESHOLD, register_label_score, resampled_macro_auc

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


def bootstrap_indices(y_true: np.ndarray, *, n: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                      max_draws_factor: int = 20) -> np.ndarray:
    """The records of up to `n` bootstrap resamples, `[resamples, records]`: the one resampling rule of every
    interval the project reports.

    As the PTB-XL benchmark (`get_appropriate_bootstrap_samples`) does, records are drawn with replacement and a
    resample counts only when every class with positives and negatives in the full set still has both, so every
    resample scores the same classes (a class's F1, a macro average, a macro-AUC). Draws stop after
    `max_draws_factor * n` (tiny test splits with rare classes): fewer resamples then, none when no class has
    both labels.
    """
    y_true = np.asarray(y_true, dtype=bool)
    if y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} must be [records, classes]")
    positives = y_true.sum(axis=0)
    defined = (positives > 0) & (positives < len(y_true))
    if not defined.any():
        return np.empty((0, len(y_true)), dtype=np.intp)
    y_true = y_true[:, defined]
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    for _ in range(max_draws_factor * n):
        index = rng.integers(0, len(y_true), len(y_true))
        counts = y_true[index].sum(axis=0)
        if ((counts > 0) & (counts < len(index))).all():
            kept.append(index)
            if len(kept) == n:
                break
    return np.array(kept, dtype=np.intp).reshape(len(kept), len(y_true))


def percentile_interval(samples: np.ndarray, level: float = BOOTSTRAP_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval at `level` of bootstrap `samples` along their first axis (NaN without samples;
    NaN samples, a figure a resample cannot score, are left out)."""
    samples = np.asarray(samples, dtype=np.float64)
    if not len(samples):
        empty = np.full(samples.shape[1:], np.nan)
        return empty, empty.copy()
    tail = (1.0 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column that is NaN in every resample: NaN, said so
        low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_macro_auc(y_true: np.ndarray, probs: np.ndarray, *, n: int = BOOTSTRAP_RESAMPLES,
                        level: float = BOOTSTRAP_LEVEL, seed: int = 0,
                        max_draws_factor: int = 20) -> tuple[float, float, int]:
    """Percentile bootstrap interval of `ecg.metrics.macro_auc` over `bootstrap_indices`: (low, high, resamples
    used); NaN with none. The benchmark's te_results.csv gives the 5% and 95% quantiles of 100 resamples:
    `level=0.9, n=100` is that convention.
    """
    y_true = np.asarray(y_true, dtype=np.uint8)
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.shape != probs.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must both be [records, classes]")
    indices = bootstrap_indices(y_true, n=n, seed=seed, max_draws_factor=max_draws_factor)
    if not len(indices):
        return float("nan"), float("nan"), 0
    low, high = percentile_interval(resampled_macro_auc(y_true, probs, indices), level)
    return float(low), float(high), len(indices)


def auc_interval(y_true: np.ndarray, probs: np.ndarray, *, prefix: str = "test_") -> dict[str, float]:
    """`{prefix}macro_auc_low/high` (bootstrap 95%) and the resamples used, as test_results.csv columns."""
    low, high, used = bootstrap_macro_auc(y_true, probs)
    return {f"{prefix}macro_auc_low": low, f"{prefix}macro_auc_high": high, f"{prefix}macro_auc_resamples": used}


def per_source_rows(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], record_ids: Sequence[str],
                    thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD):
    """CinC 2021: one row per record source (name prefix A, Q, I, S, HR, E, JS) with its Challenge score and
    F1s (`ecg.challenge.per_source`); an empty frame for any other vocabulary."""
    return challenge.per_source(y_true, probs, class_names, record_ids, thresholds)
