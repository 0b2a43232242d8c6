"""Threshold rules on hand-computed cases: the global cut, joint per-class fitting for micro-F1 (not each
class's own F1), shrinkage toward the global cut, and the choice by cross-fitting."""
from __future__ import annotations

import numpy as np
import pytest

from ecg.metrics import macro_f1, micro_f1, tune_thresholds
from ecg.thresholds import apply, choose_thresholds, fit_global, fit_per_class, fit_rule


def test_global_threshold_is_the_middle_of_the_best_cuts() -> None:
    y = np.array([[1], [1], [0], [0]])
    p = np.array([[0.3], [0.35], [0.1], [0.2]])
    # Every candidate in (0.2, 0.3] (0.225 ... 0.3) separates them; the middle of that run is 0.25.
    assert fit_global(y, p, micro_f1) == pytest.approx(0.25)
    # The generic path (any score function) agrees with the counts path.
    assert fit_global(y, p, lambda t, q: micro_f1(t, q)) == pytest.approx(0.25)


def _frequent_weak_and_rare_good() -> tuple[np.ndarray, np.ndarray]:
    """Class 0: 2 of 20 positive, every probability 0.3 (no ranking); class 1: 10 of 20, perfectly ranked."""
    y = np.zeros((20, 2), dtype=np.uint8)
    y[:2, 0] = 1
    y[:10, 1] = 1
    p = np.column_stack([np.full(20, 0.3), np.where(y[:, 1] == 1, 0.9, 0.1)])
    return y, p


def test_per_class_thresholds_fit_micro_f1_jointly_not_each_class_own_f1() -> None:
    y, p = _frequent_weak_and_rare_good()
    # Own-F1 tuning calls every record positive for class 0 (its F1 0.18 beats 0): pooled TP 12, FP 18, FN 0: 24/42.
    own = tune_thresholds(y, p, min_positives=1)
    assert micro_f1(y, apply(p, own)) == pytest.approx(24 / 42)
    # Joint fitting for micro-F1 keeps class 0 silent: TP 10, FP 0, FN 2 -> 20/22. Its cut is the middle of
    # the tied candidates above 0.3 (0.325 ... 0.95), class 1's the middle of (0.1, 0.9].
    joint = fit_per_class(y, p, micro_f1, min_positives=1, shrink_positives=0)
    assert joint.tolist() == pytest.approx([0.625, 0.5])
    assert micro_f1(y, apply(p, joint)) == pytest.approx(20 / 22)


def _two_offsets() -> tuple[np.ndarray, np.ndarray]:
    """Class A separates at (0.4, 0.6], class B at (0.1, 0.2]; 10 positives and 10 negatives each."""
    y = np.tile(np.repeat([1, 0], 10)[:, None], (1, 2)).astype(np.uint8)
    p = np.column_stack([np.where(y[:, 0] == 1, 0.6, 0.4), np.where(y[:, 1] == 1, 0.2, 0.1)])
    return y, p


def test_coordinate_ascent_and_shrinkage_toward_the_global_threshold() -> None:
    y, p = _two_offsets()
    # Global: a cut in (0.1, 0.2] gives TP 20, FP 10 (A all positive): 40/50 = 0.8, the best single cut;
    # its middle candidate is 0.15.
    assert fit_global(y, p, micro_f1) == pytest.approx(0.15)
    fitted = fit_per_class(y, p, micro_f1, shrink_positives=0)
    assert fitted.tolist() == pytest.approx([0.5, 0.15])  # A: middle of (0.4, 0.6]
    assert micro_f1(y, apply(p, fitted)) == 1.0
    # 10 positives with SHRINK_POSITIVES 10: half way from 0.15 to 0.5.
    assert fit_per_class(y, p, micro_f1, shrink_positives=10).tolist() == pytest.approx([0.325, 0.15])
    # Too few positives: the class keeps the global threshold.
    assert fit_per_class(y, p, micro_f1, min_positives=11).tolist() == pytest.approx([0.15, 0.15])
    # The generic (score function) path finds the same thresholds as the counts path.
    generic = fit_per_class(y, p, lambda t, q: micro_f1(t, q), shrink_positives=0)
    assert generic.tolist() == pytest.approx(fitted.tolist())


def test_the_rule_is_chosen_on_held_out_halves_and_ties_go_to_the_simpler_rule() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((80, 3)) < 0.3).astype(np.uint8)
    # Scores already well calibrated around 0.5: every rule is perfect, so 0.5 (the simplest) is chosen.
    good = np.where(y == 1, rng.uniform(0.6, 0.9, y.shape), rng.uniform(0.1, 0.4, y.shape))
    choice = choose_thresholds(y, good, micro_f1)
    assert choice.cross_fit == pytest.approx({"0.5": 1.0, "global": 1.0, "per_class": 1.0})
    assert choice.chosen == "0.5"
    # Everything below 0.5 but well ranked: 0.5 predicts nothing (F1 0) and a lower cut is perfect held out.
    low = good / 3
    choice = choose_thresholds(y, low, micro_f1)
    assert choice.cross_fit["0.5"] == 0.0 and choice.cross_fit["global"] > 0.95
    assert choice.chosen in ("global", "per_class")
    assert choice.thresholds["0.5"].tolist() == [0.5] * 3
    assert len(choice.cross_fit_runs["global"]) == 2 * 5  # 5 random halvings, each half fitted once


def test_the_choice_follows_the_score_function() -> None:
    y, p = _frequent_weak_and_rare_good()
    # For macro-F1 calling class 0 positive everywhere pays (its F1 goes from 0 to 0.18); for micro-F1 not.
    assert fit_rule("global", y, p, macro_f1)[0] <= 0.3 < fit_rule("per_class", y, p, micro_f1)[0]
    with pytest.raises(ValueError, match="unknown threshold rule"):
        fit_rule("nope", y, p, micro_f1)
