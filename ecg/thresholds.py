"""Decision thresholds chosen on validation for the search metric, by a method that does not reward overfitting.

Three rules, simplest first:
- `0.5`: every class at 0.5 (what the trials were ranked on);
- `global`: one threshold for every class, the one that maximises the score on validation;
- `per_class`: thresholds fitted jointly for the score (coordinate ascent over classes, starting from the
  global one), then shrunk toward the global one, and only for classes with `MIN_POSITIVES` validation
  positives. Fitting each class for its own F1 (`ecg.metrics.tune_thresholds`) optimises macro-F1, not
  micro-F1: a frequent, weakly ranked class gets a low cut that floods the pooled false positives.

The rule is chosen by cross-fitting: validation is halved at random (`REPEATS` times), each rule is fitted
on one half and scored on the other, and the rule with the best held-out mean wins (ties: the simpler).
An in-sample comparison would always prefer `per_class` (it can only fit validation better). The chosen
rule is then refitted on the whole validation split. The test split is never seen here.

The score is a function (`ecg.metrics.LabelScore`, higher is better), so any metric plugs in; scores that
are functions of per-class counts (`ecg.metrics.COUNT_FORMS`: micro- and macro-F1) take a fast path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecg.metrics import COUNT_FORMS, DEFAULT_THRESHOLD, MIN_TUNING_POSITIVES, LabelScore

RULES = ("0.5", "global", "per_class")
# Candidate cuts: a grid, not every distinct validation probability, so a cut cannot sit exactly under
# one record's score (which is what overfits on a hundred records).
CANDIDATES = np.round(np.arange(0.05, 0.951, 0.025), 4)
MIN_POSITIVES = MIN_TUNING_POSITIVES
# A class's own threshold moves from the global one by positives / (positives + SHRINK_POSITIVES) of the
# distance to its fitted value: with 5 positives a third of the way, with 90 nine tenths.
SHRINK_POSITIVES = 10
REPEATS = 5
MAX_SWEEPS = 5


@dataclass
class ThresholdChoice:
    """Every rule fitted on the whole validation split, its in-sample and cross-fitted scores, the choice."""

    thresholds: dict[str, np.ndarray]
    val_scores: dict[str, float]
    cross_fit: dict[str, float]
    chosen: str
    cross_fit_runs: dict[str, list[float]] = field(default_factory=dict)


def _grid(probs: np.ndarray) -> np.ndarray:
    """preds[j, n, c] = probs[n, c] >= CANDIDATES[j]."""
    return probs[None, :, :] >= CANDIDATES[:, None, None]


def fit_global(y_true: np.ndarray, probs: np.ndarray, score: LabelScore) -> float:
    """The single threshold of CANDIDATES that maximises `score` (ties: the one nearest 0.5)."""
    y_true = np.asarray(y_true, dtype=bool)
    preds = _grid(np.asarray(probs))
    counts = COUNT_FORMS.get(score)
    if counts is not None:
        tp = (preds & y_true).sum(axis=1)
        fp = (preds & ~y_true).sum(axis=1)
        fn = y_true.sum(axis=0) - tp
        values = np.asarray(counts(tp, fp, fn))
    else:
        values = np.array([score(y_true, p) for p in preds])
    return float(CANDIDATES[_best(values, int(np.argmin(np.abs(CANDIDATES - DEFAULT_THRESHOLD))))])


def _best(values: np.ndarray, reference: int) -> int:
    """Index of the maximum of `values`. Ties: of the runs of adjacent tied candidates, the one nearest
    `reference`, and the middle of that run (a cut midway between the records it separates generalises
    better than one at the edge of the tie)."""
    top = np.flatnonzero(values >= values.max() - 1e-12)
    runs = np.split(top, np.flatnonzero(np.diff(top) > 1) + 1)
    run = min(runs, key=lambda r: 0 if r[0] <= reference <= r[-1] else min(abs(r[0] - reference), abs(r[-1] - reference)))
    return int((run[0] + run[-1]) // 2)


def fit_per_class(y_true: np.ndarray, probs: np.ndarray, score: LabelScore, *, start: float | None = None,
                  min_positives: int = MIN_POSITIVES, shrink_positives: float = SHRINK_POSITIVES) -> np.ndarray:
    """Per-class thresholds maximising `score` jointly, shrunk toward the global threshold `start`.

    Coordinate ascent: each eligible class in turn (most positives first) takes the candidate that maximises
    the whole score with every other class held fixed, until a sweep changes nothing. Classes with fewer
    than `min_positives` positives keep `start`.
    """
    y_true, probs = np.asarray(y_true, dtype=bool), np.asarray(probs)
    n_classes = y_true.shape[1]
    if start is None:
        start = fit_global(y_true, probs, score)
    positives = y_true.sum(axis=0)
    eligible = [int(c) for c in np.argsort(-positives, kind="stable") if positives[c] >= max(1, min_positives)]
    current = np.full(n_classes, int(np.argmin(np.abs(CANDIDATES - start))))
    preds = _grid(probs)
    counts = COUNT_FORMS.get(score)
    if counts is not None:
        tp = (preds & y_true).sum(axis=1)  # [candidates, classes]
        fp = (preds & ~y_true).sum(axis=1)
        fn = positives[None, :] - tp
    columns = np.arange(n_classes)
    for _ in range(MAX_SWEEPS):
        changed = False
        for c in eligible:
            if counts is not None:
                # Every candidate for class c at once: the current counts with column c replaced.
                parts = []
                for table in (tp, fp, fn):
                    now = np.repeat(table[current, columns][None, :], len(CANDIDATES), axis=0)
                    now[:, c] = table[:, c]
                    parts.append(now)
                values = np.asarray(counts(*parts))
            else:
                chosen = preds[current, :, columns].T.copy()  # [records, classes] at the current thresholds
                values = np.empty(len(CANDIDATES))
                for j in range(len(CANDIDATES)):
                    chosen[:, c] = preds[j, :, c]
                    values[j] = score(y_true, chosen)
            best = _best(values, int(current[c]))
            if best != current[c]:
                current[c], changed = best, True
        if not changed:
            break
    fitted = CANDIDATES[current]
    weight = positives / (positives + shrink_positives)
    thresholds = np.where(np.isin(columns, eligible), start + weight * (fitted - start), start)
    return thresholds.astype(np.float64)


def fit_rule(rule: str, y_true: np.ndarray, probs: np.ndarray, score: LabelScore) -> np.ndarray:
    """The thresholds (one per class) that `rule` fits on these records."""
    n_classes = np.asarray(probs).shape[1]
    if rule == "0.5":
        return np.full(n_classes, DEFAULT_THRESHOLD)
    if rule == "global":
        return np.full(n_classes, fit_global(y_true, probs, score))
    if rule == "per_class":
        return fit_per_class(y_true, probs, score)
    raise ValueError(f"unknown threshold rule {rule!r}; known: {', '.join(RULES)}")


def apply(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return (np.asarray(probs) >= np.asarray(thresholds)[None, :]).astype(np.uint8)


def choose_thresholds(y_true: np.ndarray, probs: np.ndarray, score: LabelScore, *, repeats: int = REPEATS,
                      seed: int = 0, rules: tuple[str, ...] = RULES) -> ThresholdChoice:
    """Fit every rule on validation, pick one by cross-fitting on halves (see the module docstring)."""
    y_true, probs = np.asarray(y_true, dtype=np.uint8), np.asarray(probs)
    rng = np.random.default_rng(seed)
    runs: dict[str, list[float]] = {rule: [] for rule in rules}
    n = len(y_true)
    if n >= 4:
        for _ in range(repeats):
            order = rng.permutation(n)
            halves = (order[: n // 2], order[n // 2:])
            for fit_on, score_on in (halves, halves[::-1]):
                for rule in rules:
                    t = fit_rule(rule, y_true[fit_on], probs[fit_on], score)
                    runs[rule].append(float(score(y_true[score_on], apply(probs[score_on], t))))
    cross_fit = {rule: float(np.mean(v)) if v else float("nan") for rule, v in runs.items()}
    chosen = rules[0]
    for rule in rules[1:]:  # a more complex rule must do strictly better held out
        if not np.isnan(cross_fit[rule]) and cross_fit[rule] > cross_fit[chosen] + 1e-9:
            chosen = rule
    thresholds = {rule: fit_rule(rule, y_true, probs, score) for rule in rules}
    val_scores = {rule: float(score(y_true, apply(probs, t))) for rule, t in thresholds.items()}
    return ThresholdChoice(thresholds=thresholds, val_scores=val_scores, cross_fit=cross_fit, chosen=chosen,
                           cross_fit_runs=runs)
