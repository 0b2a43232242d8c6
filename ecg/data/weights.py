"""Per-class loss weights: the study's 1 / ln(n_i), or BCE's pos_weight = negatives / positives, or none."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ecg.data.errors import DataError

# Guard for 1 / ln(n): ln(1) = 0 and ln(0) is undefined, and 1 / ln(2) = 1.44 would weigh a 2-record class
# above everything else. Counts below e are treated as e, so weights are finite, at most 1, and never grow
# as a class gets larger.
LOG_MIN_COUNT = np.e


def _log(labels: np.ndarray) -> np.ndarray:
    counts = labels.sum(axis=0).astype(np.float64)
    return 1.0 / np.log(np.maximum(counts, LOG_MIN_COUNT))


def _pos_weight(labels: np.ndarray) -> np.ndarray:
    # A class with no positive record gets negatives / 1, the same as a class with one.
    positives = labels.sum(axis=0).astype(np.float64)
    return (len(labels) - positives) / np.maximum(positives, 1.0)


def _none(labels: np.ndarray) -> np.ndarray:
    return np.ones(labels.shape[1])


WEIGHTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"log": _log, "pos_weight": _pos_weight, "none": _none}


def class_weights(labels: np.ndarray, kind: str) -> np.ndarray:
    """float32 `[C]` weights from multi-hot `labels [N, C]` (normally the training split's)."""
    if kind not in WEIGHTS:
        raise DataError(f"class weights {kind!r} unknown; choose one of {', '.join(WEIGHTS)}")
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise DataError(f"labels must be [N, C], got shape {labels.shape}")
    return WEIGHTS[kind](labels).astype(np.float32)
