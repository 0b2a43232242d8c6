"""Multi-label metrics: F1/precision/recall, exact match, macro ROC-AUC, and threshold tuning.

Every function takes `y_true[N, C]` (0/1) and `probs[N, C]` (probabilities, not logits). Thresholds are a
scalar or one per class; a record is predicted positive for a class when `prob >= threshold`.

Every score comes from per-class counts (`label_counts`), with scikit-learn's conventions (`zero_division=0`,
tie-averaged ranks); the tests check them against scikit-learn. Not scikit-learn itself: `sklearn.metrics`
pulls in `scipy.stats`, which every trial's worker would import before its first epoch for two lines of
arithmetic (bench/results/imports).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

MIN_TUNING_POSITIVES = 5
DEFAULT_THRESHOLD = 0.5


def _check(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    if y_true.ndim != 2 or y_true.shape != probs.shape:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must both be [records, classes]")
    if not np.isfinite(probs).all():
        raise ValueError("probs contain NaN or infinite values")
    return y_true.astype(np.uint8), probs


def _thresholds(thresholds: float | Sequence[float] | np.ndarray, n_classes: int) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        return np.full(n_classes, float(t))
    if t.shape != (n_classes,):
        raise ValueError(f"{t.size} thresholds given for {n_classes} classes")
    return t


def binarize(probs: np.ndarray, thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
             *, at_least_one: bool = False) -> np.ndarray:
    """0/1 predictions `probs >= thresholds`; with `at_least_one`, a record left with no label gets its most
    probable one (the study's rule: every ECG has at least one finding)."""
    probs = np.asarray(probs)
    preds = (probs >= _thresholds(thresholds, probs.shape[1])).astype(np.uint8)
    if at_least_one and len(probs):
        empty = preds.sum(axis=1) == 0
        preds[empty, probs[empty].argmax(axis=1)] = 1
    return preds


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean ROC-AUC over the classes where it is defined (both labels present); NaN when no class qualifies.

    Computed for all classes at once as the Mann-Whitney statistic on tie-averaged ranks, which equals
    scikit-learn's `roc_auc_score` (ties count one half) at a fraction of its per-class cost: this runs after
    every epoch of every trial.
    """
    y_true, probs = _check(y_true, probs)
    positives = y_true.sum(axis=0).astype(np.float64)
    negatives = len(y_true) - positives
    defined = (positives > 0) & (negatives > 0)
    if not defined.any():
        return float("nan")
    ranks = pd.DataFrame(probs[:, defined]).rank(axis=0, method="average").to_numpy()
    pos = positives[defined]
    auc = ((ranks * y_true[:, defined]).sum(axis=0) - pos * (pos + 1) / 2) / (pos * negatives[defined])
    return float(auc.mean())


def resampled_macro_auc(y_true: np.ndarray, probs: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """`macro_auc` of every resample of the records (a row of `indices` each, as `ecg.benchmark.bootstrap_indices`
    draws them), over the classes with both labels in the full set.

    The same statistic, tie-averaged ranks included, from how often each resample drew each record: the records
    are sorted once per class instead of once per resample.
    """
    y_true, probs = _check(y_true, probs)
    indices = np.asarray(indices, dtype=np.intp)
    positives = y_true.sum(axis=0)
    defined = np.flatnonzero((positives > 0) & (positives < len(y_true)))
    if not len(defined) or not len(indices):
        return np.full(len(indices), np.nan)
    weights = np.zeros((len(indices), len(y_true)))  # copies of each record in each resample
    np.add.at(weights, (np.arange(len(indices))[:, None], indices), 1.0)
    aucs = []
    for column in defined:
        order = np.argsort(probs[:, column], kind="stable")
        value, positive, copies = probs[order, column], y_true[order, column].astype(bool), weights[:, order]
        new_value = np.r_[True, value[1:] != value[:-1]]
        group = np.cumsum(new_value) - 1  # the tie group of each sorted record
        in_group = np.add.reduceat(copies, np.flatnonzero(new_value), axis=1)
        below = np.cumsum(in_group, axis=1) - in_group  # copies ranked below each group
        ranks = below[:, group[positive]] + (in_group[:, group[positive]] + 1) / 2  # a tie shares the mean rank
        pos = copies[:, positive].sum(axis=1)
        neg = copies.sum(axis=1) - pos
        with np.errstate(divide="ignore", invalid="ignore"):
            aucs.append(((copies[:, positive] * ranks).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg))
    return np.mean(aucs, axis=0)


def evaluate(y_true: np.ndarray, probs: np.ndarray,
             thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
             *, at_least_one: bool = False, loss: float | None = None) -> dict[str, float]:
    """Micro/macro F1, precision and recall, exact match (subset accuracy) and macro ROC-AUC as plain floats.

    Classes with no positives and no predictions count as 0 in the macro averages (scikit-learn,
    `zero_division=0`): `macro_f1` averages over every class, `macro_f1_present` only over the classes with
    at least one positive record here (a rare class absent from a small test split cannot score above 0). `loss`, when given, is passed through so one dict describes the evaluation.
    """
    y_true, probs = _check(y_true, probs)
    preds = binarize(probs, thresholds, at_least_one=at_least_one)
    tp, fp, fn = label_counts(y_true, preds)
    out: dict[str, float] = {}
    for average, counts in (("micro", (tp.sum(), fp.sum(), fn.sum())), ("macro", (tp, fp, fn))):
        p, r, f = (float(np.mean(score)) for score in precision_recall_f1(*counts))
        out[f"{average}_f1"], out[f"{average}_precision"], out[f"{average}_recall"] = f, p, r
    out["exact_match"] = exact_match(y_true, preds)
    out["macro_f1_present"] = macro_f1_present(y_true, preds)
    out["macro_auc"] = macro_auc(y_true, probs)
    if loss is not None:
        out["loss"] = float(loss)
    return out


def per_class(y_true: np.ndarray, probs: np.ndarray,
              thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
              class_names: Sequence[str] | None = None, *, at_least_one: bool = False) -> pd.DataFrame:
    """One row per class: class, f1, precision, recall, support (true positives in y_true), threshold."""
    y_true, probs = _check(y_true, probs)
    n_classes = y_true.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class names given for {n_classes} classes")
    t = _thresholds(thresholds, n_classes)
    preds = binarize(probs, t, at_least_one=at_least_one)
    tp, fp, fn = label_counts(y_true, preds)
    p, r, f = precision_recall_f1(tp, fp, fn)
    return pd.DataFrame({"class": names, "f1": f, "precision": p, "recall": r,
                         "support": (tp + fn).astype(int), "threshold": t})


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray, *, min_positives: int = MIN_TUNING_POSITIVES) -> np.ndarray:
    """Per-class thresholds that maximise each class's F1 on these (validation) records.

    A class with fewer than `min_positives` positive records keeps 0.5: with one or two positives the best
    cut sits just under whatever probability they happened to get, often far below 0.5, and on the test
    split that threshold mostly adds false positives (seen on 100-record validation splits: test micro-F1
    fell from 0.84 at 0.5 to 0.50 when every class was tuned).

    Vectorised over classes: sort each column's probabilities, and since predicting the top k records
    positive gives F1 = 2 TP_k / (k + P), evaluate every cut between two distinct probabilities at once.
    The threshold is the midpoint between the last record kept and the first left out, so it generalises
    rather than sitting exactly on a validation value. A class with no positives keeps 0.5. Ties go to
    the higher threshold (fewer positives).
    """
    y_true, probs = _check(y_true, probs)
    n, n_classes = probs.shape
    thresholds = np.full(n_classes, DEFAULT_THRESHOLD)
    if n == 0:
        return thresholds
    order = np.argsort(-probs, axis=0, kind="stable")
    p_sorted = np.take_along_axis(probs, order, axis=0).astype(np.float64)
    tp = np.cumsum(np.take_along_axis(y_true, order, axis=0), axis=0, dtype=np.float64)
    positives = tp[-1]
    k = np.arange(1, n + 1, dtype=np.float64)[:, None]
    f1 = np.divide(2 * tp, k + positives, out=np.zeros_like(tp), where=(k + positives) > 0)
    # A cut is only possible where the next probability is strictly lower (or after the last record).
    next_lower = np.vstack([p_sorted[1:] < p_sorted[:-1], np.ones((1, n_classes), dtype=bool)])
    f1[~next_lower] = -1.0
    best = f1.argmax(axis=0)
    cols = np.arange(n_classes)
    kept = p_sorted[best, cols]
    left_out = np.where(best + 1 < n, p_sorted[np.minimum(best + 1, n - 1), cols], 0.0)
    tuned = np.where(best + 1 < n, (kept + left_out) / 2, kept)
    enough = positives >= max(1, min_positives)
    thresholds[enough] = tuned[enough]
    return thresholds


def macro_f1_present(y_true: np.ndarray, preds: np.ndarray) -> float:
    """Mean F1 over the classes with at least one positive in `y_true` (NaN when there is none)."""
    y_true, preds = np.asarray(y_true, dtype=bool), np.asarray(preds, dtype=bool)
    present = y_true.any(axis=0)
    if not present.any():
        return float("nan")
    tp = (y_true & preds).sum(axis=0)[present]
    denominator = y_true.sum(axis=0)[present] + preds.sum(axis=0)[present]
    return float(np.mean(2 * tp / denominator))


# --- Scores as functions, so that threshold rules and ensemble selection optimise the search metric itself.
# A LabelScore rates 0/1 predictions, a ProbScore probabilities; both are "higher is better".
LabelScore = Callable[[np.ndarray, np.ndarray], float]
ProbScore = Callable[[np.ndarray, np.ndarray], float]


def micro_f1(y_true: np.ndarray, preds: np.ndarray) -> float:
    """F1 of the pooled counts of every class."""
    return micro_f1_counts(*label_counts(y_true, preds))


def macro_f1(y_true: np.ndarray, preds: np.ndarray) -> float:
    """Mean per-class F1 over every class (a class with no positives and no predictions scores 0)."""
    return macro_f1_counts(*label_counts(y_true, preds))


def exact_match(y_true: np.ndarray, preds: np.ndarray) -> float:
    return float(np.mean(np.all(np.asarray(y_true, bool) == np.asarray(preds, bool), axis=1)))


def label_counts(y_true: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, false positives and false negatives."""
    y_true, preds = np.asarray(y_true, dtype=bool), np.asarray(preds, dtype=bool)
    return ((y_true & preds).sum(axis=0), (~y_true & preds).sum(axis=0), (y_true & ~preds).sum(axis=0))


def precision_recall_f1(tp: np.ndarray, fp: np.ndarray,
                        fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of each set of counts (any shape); 0 where a ratio is undefined
    (`zero_division=0`)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)

    return ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn)


def micro_f1_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray | float:
    """Micro-F1 from per-class counts along the last axis (so [candidates, classes] gives one per candidate)."""
    score = precision_recall_f1(*(np.asarray(a, dtype=np.float64).sum(axis=-1) for a in (tp, fp, fn)))[2]
    return float(score) if score.ndim == 0 else score


def macro_f1_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray | float:
    """Macro-F1 from per-class counts along the last axis."""
    score = precision_recall_f1(tp, fp, fn)[2].mean(axis=-1)
    return float(score) if np.ndim(score) == 0 else score


# Search metrics (without their "val_" prefix) that depend on the 0/1 predictions. Another module registers
# its own with `register_label_score` (a metric the thresholds and the ensemble then optimise).
LABEL_SCORES: dict[str, LabelScore] = {"micro_f1": micro_f1, "macro_f1": macro_f1, "exact_match": exact_match}
# Label scores that are a function of per-class counts: thresholds are then fitted on counts, far faster.
COUNT_FORMS: dict[LabelScore, Callable[..., np.ndarray | float]] = {micro_f1: micro_f1_counts,
                                                                   macro_f1: macro_f1_counts}
# Metrics that do not depend on thresholds; thresholds are then fitted for the study's criterion, micro-F1.
THRESHOLD_FREE = ("macro_auc", "loss")


def register_label_score(name: str, score: LabelScore) -> None:
    """Make `val_<name>` a search metric that thresholds and ensembles can be chosen for."""
    LABEL_SCORES[name] = score


def _base(metric: str) -> str:
    return metric.removeprefix("val_")


def label_score(metric: str) -> LabelScore:
    """The LabelScore that thresholds are chosen for under the search metric `metric` (e.g. "val_micro_f1")."""
    name = _base(metric)
    if name in THRESHOLD_FREE:
        return micro_f1
    if name not in LABEL_SCORES:
        raise ValueError(f"no label score for metric {metric!r}; known: {', '.join(LABEL_SCORES)}")
    return LABEL_SCORES[name]


def mean_bce(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Unweighted binary cross-entropy averaged over records and classes."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y_true, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def probability_score(metric: str) -> ProbScore:
    """The search metric as a function of probabilities, higher is better: label scores at 0.5 (as each trial
    is ranked), macro AUC as it is, the loss negated (unweighted BCE: the class weights are the trial's own)."""
    name = _base(metric)
    if name == "macro_auc":
        return macro_auc
    if name == "loss":
        return lambda y_true, probs: -mean_bce(y_true, probs)
    score = label_score(metric)
    return lambda y_true, probs: score(y_true, binarize(probs, DEFAULT_THRESHOLD))
