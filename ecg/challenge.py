"""The PhysioNet/CinC Challenge 2021 metric, as the Challenge's evaluate_model.py defines it.

`compute_modified_confusion_matrix` there: a [classes x classes] matrix A where each record adds, for every
label j it carries and every class k it is given as output, 1 / n to A[j, k], n being the number of distinct
classes in the union of its labels and outputs (at least 1). `compute_challenge_metric`: the observed score
is sum(W * A) with W the weights.csv reward matrix; it is scaled as (observed - inactive) / (correct - inactive),
where "correct" outputs exactly the labels and "inactive" outputs only the normal class (sinus rhythm,
426783006), so a perfect classifier scores 1 and the always-normal one 0 (0 also when correct == inactive).
Equivalent codes count as one class (`ecg.data.cinc2021`). A record with no scored label adds nothing.

Outputs are binary here as there: a probability becomes a positive at `prob >= threshold`. Thresholds chosen
for this score come from `ecg.thresholds` through `label_score` (registered as `challenge_score` by
`ecg.benchmark`), like those of every other search metric.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ecg.data.cinc2021 import SOURCES, Scoring, scoring, source_of
from ecg.metrics import binarize, evaluate


def modified_confusion_matrix(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """A[j, k] = sum over records with label j and output k of 1 / |labels ∪ outputs| (at least 1)."""
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    normalization = np.maximum((labels | outputs).sum(axis=1), 1).astype(np.float64)
    return labels.T.astype(np.float64) @ (outputs / normalization[:, None])


def challenge_metric(labels: np.ndarray, outputs: np.ndarray, weights: np.ndarray, normal_index: int) -> float:
    """The normalised Challenge score of binary `outputs [N, C]` against `labels [N, C]`."""
    labels = np.asarray(labels, dtype=bool)
    outputs = np.asarray(outputs, dtype=bool)
    if labels.shape != outputs.shape or labels.ndim != 2 or weights.shape != (labels.shape[1],) * 2:
        raise ValueError(f"labels {labels.shape}, outputs {outputs.shape} and weights {weights.shape} do not match")
    observed = np.nansum(weights * modified_confusion_matrix(labels, outputs))
    correct = np.nansum(weights * modified_confusion_matrix(labels, labels))
    inactive_outputs = np.zeros_like(labels)
    inactive_outputs[:, normal_index] = True
    inactive = np.nansum(weights * modified_confusion_matrix(labels, inactive_outputs))
    if correct == inactive:
        return 0.0
    return float((observed - inactive) / (correct - inactive))


def scored_columns(class_names: Sequence[str], score: Scoring | None = None) -> np.ndarray | None:
    """Column of each scored class in `class_names` (weights.csv order), or None when any is missing."""
    score = score or scoring()
    index = {name: i for i, name in enumerate(class_names)}
    if not all(name in index for name in score.class_names):
        return None
    return np.array([index[name] for name in score.class_names])


def challenge_score(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                    thresholds: float | Sequence[float] | np.ndarray = 0.5) -> float | None:
    """The Challenge score over the 26 scored classes of `class_names` (other classes ignored), or None when
    the vocabulary is not the Challenge's (a dataset loaded without `--task cinc2021`)."""
    score = scoring()
    columns = scored_columns(class_names, score)
    if columns is None:
        return None
    outputs = binarize(np.asarray(probs), thresholds)[:, columns]
    return challenge_metric(np.asarray(y_true)[:, columns], outputs, score.weights, score.normal_index)


def per_source(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], record_ids: Sequence[str],
               thresholds: float | Sequence[float] | np.ndarray = 0.5) -> pd.DataFrame:
    """One row per record source (name prefix): source, database, records, challenge_score, micro/macro F1.
    Empty when the vocabulary is not the Challenge's."""
    if scored_columns(class_names) is None:
        return pd.DataFrame()
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    sources = np.array([source_of(rid) for rid in record_ids])
    rows = []
    for source in sorted(set(sources)):
        mask = sources == source
        scores = evaluate(y_true[mask], probs[mask], thresholds)
        rows.append({"source": source, "database": SOURCES.get(source, "unknown"), "records": int(mask.sum()),
                     "challenge_score": challenge_score(y_true[mask], probs[mask], class_names, thresholds),
                     "micro_f1": scores["micro_f1"], "macro_f1": scores["macro_f1"]})
    return pd.DataFrame(rows)


def label_score(y_true: np.ndarray, preds: np.ndarray) -> float:
    """The Challenge score of 0/1 predictions whose first 26 columns are the scored classes in weights.csv
    order, as `--task cinc2021` (and `cinc2021+unscored`, which appends its other classes) loads them: the
    (y_true, preds) form that threshold and ensemble choices optimise (`ecg.metrics.register_label_score`)."""
    score = scoring()
    n = len(score.class_names)
    y_true, preds = np.asarray(y_true), np.asarray(preds)
    if y_true.shape[1] < n:
        raise ValueError(f"the Challenge score needs its {n} scored classes first; got {y_true.shape[1]} classes")
    return challenge_metric(y_true[:, :n], preds[:, :n], score.weights, score.normal_index)
