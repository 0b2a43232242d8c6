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


def _scored(n_records: int = 80, seed: int = 0):
    """Labels of 4 classes (the last absent) and probabilities that rank them better than chance."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n_records, 4)) < [0.3, 0.2, 0.4, 0.0]).astype(np.uint8)
    probs = np.clip(0.35 * y + rng.random(y.shape) * 0.65, 0, 1).round(2)  # rounded: ties, as real models have
    return y, probs


def test_resampled_macro_auc_is_macro_auc_of_each_resample():
    from ecg.benchmark import bootstrap_indices
    from ecg.metrics import macro_auc, resampled_macro_auc

    y, probs = _scored()
    indices = bootstrap_indices(y, n=200, seed=3)
    assert indices.shape == (200, 80)
    expected = [macro_auc(y[i], probs[i]) for i in indices]
    assert resampled_macro_auc(y, probs, indices) == pytest.approx(expected, abs=1e-12)


def test_score_intervals_bracket_the_test_figures_and_leave_an_absent_class_unscored():
    from ecg.evaluation import SCORES, score_intervals
    from ecg.metrics import evaluate, per_class

    y, probs = _scored(120)
    thresholds = np.array([0.5, 0.4, 0.6, 0.5])
    found = score_intervals(y, probs, thresholds, class_names=list("abcd"), n=300)
    point = evaluate(y, probs, thresholds)
    scores = found.scores.set_index("score")
    assert list(scores.index) == list(SCORES) and found.resamples == 300
    for score in SCORES:  # the value is test_results.csv's, the interval around it
        assert scores.loc[score, "value"] == point[score]
        assert scores.loc[score, "low"] <= point[score] <= scores.loc[score, "high"], score
    assert scores.loc["micro_f1", "low"] < scores.loc["micro_f1", "high"]
    classes = found.per_class.set_index("class")
    table = per_class(y, probs, thresholds, list("abcd")).set_index("class")
    assert classes.loc["a", "f1"] == table.loc["a", "f1"] and classes.loc["a", "f1_low"] < table.loc["a", "f1"]
    assert classes.loc["d", "support"] == 0 and classes.loc["d"].drop("support").isna().all()  # n/a, not 0


def test_a_difference_is_bootstrapped_on_the_same_resamples():
    from ecg.evaluation import score_intervals

    y, probs = _scored(120)
    same = score_intervals(y, probs, 0.5, versus=(probs.copy(), 0.5), n=200).scores
    assert (same[["difference", "difference_low", "difference_high"]] == 0).all().all()  # paired: exactly 0
    other = score_intervals(y, probs, 0.5, versus=(np.clip(probs + 0.1, 0, 1), 0.5), n=200).scores.set_index("score")
    row = other.loc["micro_f1"]
    assert row["difference"] == pytest.approx(row["value"] - row["versus_value"])
    assert row["difference_low"] <= row["difference"] <= row["difference_high"]


def test_test_probabilities_read_back_as_written():
    from ecg.evaluation import TestProbabilities, probabilities_frame

    y, probs = _scored(5)
    frame = probabilities_frame(["r1", "r2", "r3", "r4", "r5"], ["AF", "SR", "PAC", "LBBB"], y,
                                {"rank1": probs, "ensemble_greedy": probs / 2})
    assert list(frame.columns) == ["record_id", "class", "label", "rank1", "ensemble_greedy"] and len(frame) == 20
    back = TestProbabilities.from_frame(frame.sample(frac=1.0, random_state=0))  # any row order
    assert sorted(back.class_names) == sorted(["AF", "SR", "PAC", "LBBB"]) and len(back.record_ids) == 5
    order = [["AF", "SR", "PAC", "LBBB"].index(c) for c in back.class_names]
    rows = [["r1", "r2", "r3", "r4", "r5"].index(r) for r in back.record_ids]
    assert (back.labels == y[rows][:, order]).all()
    assert np.array_equal(back.probabilities["ensemble_greedy"], (probs / 2)[rows][:, order])
    with pytest.raises(ValueError, match="rows for"):
        TestProbabilities.from_frame(frame.iloc[:-1])
