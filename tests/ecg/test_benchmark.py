"""What the benchmarks report: the bootstrap macro-AUC interval and the task-specific scores."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ecg.benchmark import bootstrap_macro_auc, task_scores
from ecg.data.cinc2021 import scoring


def test_separated_classes_give_a_point_interval_at_one():
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0], [0, 1]])
    probs = np.where(y == 1, 0.9, 0.1)
    assert bootstrap_macro_auc(y, probs, n=50) == (1.0, 1.0, 50)


def test_interval_brackets_the_estimate_and_narrows_with_more_records():
    rng = np.random.default_rng(0)

    def width(n_records):
        y = (rng.random((n_records, 3)) < 0.3).astype(int)
        probs = np.clip(0.3 * y + rng.random((n_records, 3)) * 0.8, 0, 1)
        low, high, used = bootstrap_macro_auc(y, probs, n=200)
        from ecg.metrics import macro_auc

        assert low < macro_auc(y, probs) < high and used == 200
        return high - low

    assert width(1000) < width(100) / 2  # the interval shrinks about as 1/sqrt(n): sqrt(10) ~ 3.2


def test_resamples_that_lose_a_class_are_not_used():
    # one positive in 50 records: a resample keeps it with probability 1 - (49/50)^50 = 0.636
    y = np.zeros((50, 1), dtype=int)
    y[7] = 1
    probs = np.linspace(0, 1, 50)[:, None]
    _, _, used = bootstrap_macro_auc(y, probs, n=1000, max_draws_factor=1)
    assert 580 < used < 690  # 1,000 draws, ~636 kept (binomial sd ~15)
    assert all(math.isnan(v) for v in bootstrap_macro_auc(np.zeros((5, 2)), np.zeros((5, 2)))[:2])


def test_task_scores_only_for_the_challenge_vocabulary():
    names = list(scoring().class_names)
    y = np.zeros((2, 26))
    y[0, names.index("AF")] = y[1, names.index("NSR")] = 1
    assert task_scores(y, y, names) == {"challenge_score": pytest.approx(1.0)}
    assert task_scores(y, y, [f"c{i}" for i in range(26)]) == {}
