"""One model's evaluation on the test split, every choice made on validation.

The search's winners (`search.winners`) and a retrained winner (`python -m ecg.train`) are scored here, the
same way: each threshold rule of `ecg.thresholds` (0.5, one global cut, per-class cuts) fitted on validation,
one rule `chosen` by cross-fitting on validation, the test split only ever scored. Each row carries the
validation scores the rule was chosen on, PTB-XL's macro-AUC interval and a benchmark's own scores (CinC 2021's
Challenge score). The models' test probabilities are kept (`probabilities_frame`, test_probabilities.csv) so that
the report can put a bootstrap interval on every test figure (`score_intervals`) without the data or the models.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ecg.benchmark import (BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, auc_interval, bootstrap_indices, per_source_rows,
                           percentile_interval, task_scores)
from ecg.data import ECGDataset
from ecg.metrics import binarize, evaluate, label_score, per_class, precision_recall_f1, resampled_macro_auc
from ecg.thresholds import choose_thresholds

SCORES = ("micro_f1", "macro_f1", "macro_f1_present", "micro_precision", "micro_recall", "exact_match", "macro_auc")
AT_LEAST_ONE = "+at_least_one"  # suffix of a rule's variant that gives an unlabelled record its likeliest class


@dataclass
class TestEvaluation:
    """One row per threshold rule (`rows`), the per-class table and, for multi-source data, per-source rows."""

    rows: list[dict[str, Any]]
    per_class: pd.DataFrame
    per_source: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen: str = "0.5"
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)  # rule -> per-class cuts

    @property
    def chosen_thresholds(self) -> np.ndarray:
        return self.thresholds[self.chosen]


def evaluate_on_test(val: ECGDataset, val_probs: np.ndarray, test: ECGDataset, test_probs: np.ndarray, *,
                     metric: str, seed: int = 0, at_least_one: bool = False,
                     test_loss: float | None = None) -> TestEvaluation:
    """Score `test_probs` under every threshold rule fitted on (`val`, `val_probs`) for `metric`.

    `at_least_one` adds each rule's variant in which a record left with no label gets its most probable one
    (rule name + "+at_least_one"); `test_loss` is copied into every row as `test_loss`.
    """
    choice = choose_thresholds(val.labels, val_probs, label_score(metric), seed=seed)
    interval = auc_interval(test.labels, test_probs)
    variants = [(rule, False) for rule in choice.thresholds]
    if at_least_one:
        variants += [(rule + AT_LEAST_ONE, True) for rule in choice.thresholds]
    rows, tables, sources_frames = [], [], []
    for name, fill in variants:
        rule = name.removesuffix(AT_LEAST_ONE)
        thresholds = choice.thresholds[rule]
        chosen = name == choice.chosen
        val_scores = evaluate(val.labels, val_probs, thresholds, at_least_one=fill)
        test_scores = evaluate(test.labels, test_probs, thresholds, at_least_one=fill)
        rows.append({
            "thresholds": name, "chosen": chosen,
            # What the rule was chosen on: its mean score on held-out halves of validation.
            "cv_score": choice.cross_fit[rule] if not fill else float("nan"),
            **{f"val_{k}": val_scores[k] for k in SCORES},
            **{f"test_{k}": test_scores[k] for k in SCORES}, **interval,
            # what a benchmark defines for its own classes only (CinC 2021: val/test_challenge_score)
            **{f"val_{k}": v for k, v in task_scores(val.labels, val_probs, val.class_names, thresholds).items()},
            **{f"test_{k}": v for k, v in task_scores(test.labels, test_probs, test.class_names, thresholds).items()},
            **({"test_loss": test_loss} if test_loss is not None else {}),
            "n_val_records": len(val), "n_test_records": len(test),
            "test_positives": int(test.labels.sum()),
            "test_classes_present": int((test.labels.sum(axis=0) > 0).sum()),
            "threshold_values": " ".join(f"{t:.4g}" for t in thresholds),
        })
        table = per_class(test.labels, test_probs, thresholds, test.class_names, at_least_one=fill)
        table.insert(0, "chosen", chosen)
        table.insert(0, "thresholds", name)
        table["val_support"] = val.labels.sum(axis=0).astype(int)
        tables.append(table)
        sources = pd.DataFrame() if fill else per_source_rows(test.labels, test_probs, test.class_names,
                                                              test.record_ids, thresholds)
        if len(sources):
            sources.insert(0, "chosen", chosen)
            sources.insert(0, "thresholds", name)
            sources_frames.append(sources)
    return TestEvaluation(
        rows=rows, per_class=pd.concat(tables, ignore_index=True),
        per_source=pd.concat(sources_frames, ignore_index=True) if sources_frames else pd.DataFrame(),
        chosen=choice.chosen, thresholds=dict(choice.thresholds))


# --- the test probabilities each evaluated model gave, and bootstrap intervals of its test figures from them

PROBABILITY_COLUMNS = ("record_id", "class", "label")  # then one column per evaluated model


def probabilities_frame(record_ids: Sequence[str], class_names: Sequence[str], labels: np.ndarray,
                        probabilities: dict[str, np.ndarray]) -> pd.DataFrame:
    """test_probabilities.csv: one row per test record and class (record-major), its label and each model's
    probability in a column named after the model."""
    labels = np.asarray(labels)
    n_records, n_classes = labels.shape
    frame = pd.DataFrame({"record_id": np.repeat(np.asarray(record_ids, dtype=object), n_classes),
                          "class": np.tile(np.asarray(class_names, dtype=object), n_records),
                          "label": labels.reshape(-1).astype(np.uint8)})
    for model, probs in probabilities.items():
        frame[model] = np.asarray(probs, dtype=np.float64).reshape(-1)
    return frame


@dataclass
class TestProbabilities:
    """test_probabilities.csv read back: labels `[records, classes]` and each model's probabilities."""

    record_ids: list[Any]
    class_names: list[Any]
    labels: np.ndarray
    probabilities: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "TestProbabilities":
        """ValueError, one line, for a frame that is not one row per record and class."""
        missing = [c for c in PROBABILITY_COLUMNS if c not in frame]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")
        records, classes = list(dict.fromkeys(frame["record_id"])), list(dict.fromkeys(frame["class"]))
        if len(frame) != len(records) * len(classes):
            raise ValueError(f"{len(frame)} rows for {len(records)} records x {len(classes)} classes")

        def grid(column: str) -> np.ndarray:
            table = frame.pivot(index="record_id", columns="class", values=column)
            return table.reindex(index=records, columns=classes).to_numpy(dtype=np.float64)

        models = [c for c in frame.columns if c not in PROBABILITY_COLUMNS]
        return cls(records, classes, grid("label").astype(np.uint8), {m: grid(m) for m in models})


@dataclass
class ScoreIntervals:
    """Bootstrap intervals of one model's test figures, and of their difference from another model's.

    `scores`: one row per figure of `SCORES`: `value` (as test_results.csv has it), `low`, `high`, and with a
    second model `versus_value`, `difference` (this model minus it) with `difference_low/high` (paired: both
    scored on the same resamples). `per_class`: class, support, then `f1`, `precision`, `recall` with their
    `_low`/`_high`; NaN for a class with no positive record in test, which test cannot score.
    """

    scores: pd.DataFrame
    per_class: pd.DataFrame
    resamples: int
    level: float


def _resampled_scores(y_true: np.ndarray, probs: np.ndarray, thresholds: Any, indices: np.ndarray,
                      at_least_one: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every figure of `SCORES` (one value per resample) and each class's F1, precision and recall
    (`[resamples, classes]`), from the per-class counts of each resample (`ecg.metrics`' definitions)."""
    y = np.asarray(y_true, dtype=bool)
    preds = binarize(probs, thresholds, at_least_one=at_least_one).astype(bool)
    weights = np.zeros((len(indices), len(y)))  # how often each resample drew each record
    np.add.at(weights, (np.arange(len(indices))[:, None], indices), 1.0)
    tp, fp, fn = (weights @ counted.astype(np.float64) for counted in (y & preds, ~y & preds, y & ~preds))
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    micro = precision_recall_f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
    present = y.any(axis=0)  # the same classes in every resample (`bootstrap_indices`)
    scores = {"micro_f1": micro[2], "macro_f1": f1.mean(axis=1),
              "macro_f1_present": f1[:, present].mean(axis=1) if present.any() else np.full(len(indices), np.nan),
              "micro_precision": micro[0], "micro_recall": micro[1],
              "exact_match": weights @ (y == preds).all(axis=1) / len(y),
              "macro_auc": resampled_macro_auc(y_true, probs, indices)}
    return scores, {"f1": f1, "precision": precision, "recall": recall}


def score_intervals(y_true: np.ndarray, probs: np.ndarray, thresholds: Any, *,
                    class_names: Sequence[Any] | None = None,
                    versus: tuple[np.ndarray, Any] | None = None, at_least_one: bool = False,
                    n: int = BOOTSTRAP_RESAMPLES, level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> ScoreIntervals:
    """Percentile bootstrap intervals (`ecg.benchmark.bootstrap_indices`) of the test figures of `probs` under
    `thresholds`; with `versus` (another model's probabilities and thresholds), of the difference too."""
    y_true = np.asarray(y_true, dtype=np.uint8)
    indices = bootstrap_indices(y_true, n=n, seed=seed)
    point = evaluate(y_true, probs, thresholds, at_least_one=at_least_one)
    samples, class_samples = _resampled_scores(y_true, probs, thresholds, indices, at_least_one)
    rows = []
    other = None
    if versus is not None:
        other_point = evaluate(y_true, versus[0], versus[1], at_least_one=at_least_one)
        other = other_point, _resampled_scores(y_true, versus[0], versus[1], indices, at_least_one)[0]
    for score in SCORES:
        low, high = percentile_interval(samples[score], level)
        row = {"score": score, "value": point[score], "low": float(low), "high": float(high)}
        if other is not None:
            difference_low, difference_high = percentile_interval(samples[score] - other[1][score], level)
            row.update(versus_value=other[0][score], difference=point[score] - other[0][score],
                       difference_low=float(difference_low), difference_high=float(difference_high))
        rows.append(row)
    table = per_class(y_true, probs, thresholds, class_names, at_least_one=at_least_one)
    absent = table["support"].to_numpy() == 0
    classes = table[["class", "support"]].copy()
    for name, values in class_samples.items():
        low, high = percentile_interval(values, level)
        classes[name] = table[name].where(~absent)
        classes[f"{name}_low"], classes[f"{name}_high"] = np.where(absent, np.nan, low), np.where(absent, np.nan, high)
    return ScoreIntervals(pd.DataFrame(rows), classes, len(indices), level)
