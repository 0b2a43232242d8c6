"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004; as in auto-sklearn and AutoGluon).

Starting from an empty bag, each round adds the candidate (again, if it is already in) whose addition makes
the bag's mean probability score best on validation; the bag kept is the best one seen over all rounds.
The first round picks the best single candidate, so the result is never below it on validation. Weights
are how often each candidate is in the bag. Validation only: test is for reporting what was chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ecg.metrics import ProbScore

ROUNDS = 25


@dataclass
class Ensemble:
    """Weights over the candidates (summing to 1), the bag's validation score, the score after each round."""

    weights: np.ndarray
    score: float
    history: list[float]

    @property
    def members(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.weights > 0)]


def combine(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted mean of the candidates' probabilities."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.tensordot(weights / weights.sum(), np.asarray(probs, dtype=np.float64), axes=1)


def greedy_selection(y_true: np.ndarray, probs: Sequence[np.ndarray], score: ProbScore, *,
                     rounds: int = ROUNDS) -> Ensemble:
    """Caruana's selection on validation predictions `probs[m][N, C]`; ties go to the earlier candidate
    (the better-ranked trial) and to the smaller bag."""
    if not len(probs):
        raise ValueError("greedy selection needs at least one candidate")
    stacked = np.asarray(probs, dtype=np.float64)
    counts = np.zeros(len(stacked), dtype=np.int64)
    total = np.zeros_like(stacked[0])
    best_counts, best_score, history = counts.copy(), -np.inf, []
    for round_ in range(1, rounds + 1):
        values = [score(y_true, (total + candidate) / round_) for candidate in stacked]
        pick = int(np.argmax(values))  # first maximum: the better-ranked candidate
        counts[pick] += 1
        total += stacked[pick]
        history.append(float(values[pick]))
        if values[pick] > best_score + 1e-12:
            best_score, best_counts = float(values[pick]), counts.copy()
    return Ensemble(weights=best_counts / best_counts.sum(), score=best_score, history=history)
