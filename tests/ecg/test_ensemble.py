"""Greedy ensemble selection with replacement on hand-made predictions with a known optimum."""
from __future__ import annotations

import numpy as np
import pytest

from ecg.ensemble import combine, greedy_selection
from ecg.metrics import probability_score

MICRO_AT_HALF = probability_score("val_micro_f1")


def test_greedy_finds_the_pair_whose_mean_is_perfect() -> None:
    y = np.array([[1], [1], [0], [0]])
    a = np.array([[0.9], [0.45], [0.1], [0.2]])  # alone: 1 of 2 positives, F1 2/3 (the best single model)
    b = np.array([[0.3], [0.9], [0.6], [0.1]])  # alone: F1 1/2
    c = np.array([[0.2], [0.2], [0.2], [0.2]])  # alone: F1 0
    ensemble = greedy_selection(y, [a, b, c], MICRO_AT_HALF)
    assert ensemble.history[0] == pytest.approx(2 / 3)  # round 1 picks the best single model
    # (a + b) / 2 = 0.6, 0.675, 0.35, 0.15: perfect; later rounds cannot beat it, so the bag of round 2 stays.
    assert ensemble.weights.tolist() == [0.5, 0.5, 0.0]
    assert ensemble.score == 1.0 and ensemble.members == [0, 1]
    assert MICRO_AT_HALF(y, combine([a, b, c], ensemble.weights)) == 1.0


def test_greedy_is_never_below_the_best_single_candidate() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((60, 5)) < 0.3).astype(np.uint8)
    candidates = [np.clip(y * rng.uniform(0.2, 0.8) + rng.normal(0, 0.3, y.shape), 0, 1) for _ in range(6)]
    best_single = max(MICRO_AT_HALF(y, c) for c in candidates)
    ensemble = greedy_selection(y, candidates, MICRO_AT_HALF)
    assert ensemble.score >= best_single
    assert ensemble.weights.sum() == pytest.approx(1.0)
    assert MICRO_AT_HALF(y, combine(candidates, ensemble.weights)) == pytest.approx(ensemble.score)


def test_loss_is_minimised_and_auc_maximised() -> None:
    y = np.array([[1], [0]])
    sure, unsure = np.array([[0.9], [0.1]]), np.array([[0.6], [0.4]])
    assert greedy_selection(y, [unsure, sure], probability_score("val_loss")).weights.tolist() == [0.0, 1.0]
    assert probability_score("val_macro_auc")(y, unsure) == 1.0
