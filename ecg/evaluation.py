"""One model's evaluation on the test split, every choice made on validation.

The search's winners (`search.winners`) and a retrained winner (`python -m ecg.train`) are scored here, the
same way: each threshold rule of `ecg.thresholds` (0.5, one global cut, per-class cuts) fitted on validation,
one rule `chosen` by cross-fitting on validation, the test split only ever scored. Each row carries the
validation scores the rule was chosen on, PTB-XL's macro-AUC interval and a benchmark's own scores (CinC 2021's
Challenge score).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ecg.benchmark import auc_interval, per_source_rows, task_scores
from ecg.data import ECGDataset
from ecg.metrics import evaluate, label_score, per_class
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
