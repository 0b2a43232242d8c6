"""ecg.metrics against hand-computed cases and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, roc_auc_score

from ecg.metrics import binarize, evaluate, macro_auc, per_class, tune_thresholds

# Two classes, four records. At 0.5: predictions [[1,0],[1,1],[0,1],[0,1]].
# class 0: TP 1, FP 1, FN 1 -> P 0.5, R 0.5, F1 0.5;  class 1: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8.
# micro: TP 3, FP 2, FN 1 -> P 0.6, R 0.75, F1 6/9.  Exact match: only record 0 -> 0.25.
# AUC: class 0 ranks 3 of 4 positive/negative pairs right -> 0.75; class 1 all four -> 1.0.
Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
P = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.8], [0.1, 0.55]])


def test_hand_computed_case():
    m = evaluate(Y, P)
    assert m["micro_precision"] == pytest.approx(0.6)
    assert m["micro_recall"] == pytest.approx(0.75)
    assert m["micro_f1"] == pytest.approx(6 / 9)
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["macro_recall"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx(0.65)
    assert m["exact_match"] == pytest.approx(0.25)
    assert m["macro_auc"] == pytest.approx(0.875)
    assert "loss" not in m
    assert evaluate(Y, P, loss=0.3)["loss"] == pytest.approx(0.3)


def test_class_without_positives_counts_zero_in_macro_and_is_left_out_of_auc():
    y = np.hstack([Y, np.zeros((4, 1), int)])
    p = np.hstack([P, np.full((4, 1), 0.1)])
    m = evaluate(y, p)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["micro_f1"] == pytest.approx(6 / 9)  # nothing predicted for it, so micro is unchanged
    assert m["macro_auc"] == pytest.approx(0.875)
    table = per_class(y, p, 0.5, ["a", "b", "none"])
    assert table.loc[2, "support"] == 0 and table.loc[2, "f1"] == 0.0


def test_all_negative_predictions():
    m = evaluate(Y, np.full(Y.shape, 0.1))
    assert m["micro_f1"] == 0.0 and m["micro_precision"] == 0.0 and m["micro_recall"] == 0.0
    assert m["macro_f1"] == 0.0
    assert m["exact_match"] == pytest.approx(0.25)  # record 3 has no labels and none predicted
    assert m["macro_auc"] == pytest.approx(0.5)  # constant scores rank nothing


def test_perfect_predictor():
    m = evaluate(Y, Y.astype(float))
    for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "exact_match", "macro_auc"):
        assert m[key] == pytest.approx(1.0), key


def test_macro_auc_undefined_everywhere_is_nan():
    assert np.isnan(evaluate(np.ones((3, 2)), np.full((3, 2), 0.7))["macro_auc"])


def test_exact_match_equals_sklearn_subset_accuracy_and_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 6)) < 0.3).astype(int)
    p = np.clip(y * 0.4 + rng.random((200, 6)) * 0.7, 0, 1)
    m = evaluate(y, p)
    preds = (p >= 0.5).astype(int)
    assert m["exact_match"] == pytest.approx(accuracy_score(y, preds))
    assert m["micro_f1"] == pytest.approx(f1_score(y, preds, average="micro"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, preds, average="macro"))
    assert 0 < m["exact_match"] < 1



def test_every_score_equals_sklearn_with_empty_classes_and_no_predictions():
    """Our counts against scikit-learn's `zero_division=0`: a class with no positive record, one never
    predicted, one with neither, and a perfect one."""
    rng = np.random.default_rng(1)
    y = (rng.random((50, 5)) < 0.3).astype(int)
    p = rng.random((50, 5))
    y[:, 0] = 0  # no positives, some predictions
    p[:, 1] = 0.1  # positives, never predicted
    y[:, 2], p[:, 2] = 0, 0.1  # neither
    p[:, 3] = y[:, 3] * 0.9  # perfect
    m, preds = evaluate(y, p), (p >= 0.5).astype(int)
    for average in ("micro", "macro"):
        prec, rec, f1, _ = precision_recall_fscore_support(y, preds, average=average, zero_division=0)
        assert (m[f"{average}_precision"], m[f"{average}_recall"], m[f"{average}_f1"]) == pytest.approx((prec, rec, f1))
    prec, rec, f1, support = precision_recall_fscore_support(y, preds, average=None, zero_division=0)
    table = per_class(y, p)
    assert table["precision"].tolist() == pytest.approx(prec) and table["recall"].tolist() == pytest.approx(rec)
    assert table["f1"].tolist() == pytest.approx(f1) and table["support"].tolist() == support.tolist()
    assert table["f1"].tolist()[:4] == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_per_class_table():
    table = per_class(Y, P, [0.5, 0.6], ["AF", "PVC"])
    assert list(table.columns) == ["class", "f1", "precision", "recall", "support", "threshold"]
    assert list(table["class"]) == ["AF", "PVC"]
    assert list(table["support"]) == [2, 2]
    # class 1 at 0.6: record 3 (0.55) is no longer predicted -> perfect
    assert table["f1"].tolist() == pytest.approx([0.5, 1.0])
    assert table["threshold"].tolist() == [0.5, 0.6]
    with pytest.raises(ValueError, match="3 class names given for 2 classes"):
        per_class(Y, P, 0.5, ["a", "b", "c"])


def test_at_least_one_gives_empty_records_their_most_probable_label():
    p = np.array([[0.2, 0.4], [0.6, 0.1], [0.3, 0.1]])
    assert binarize(p).tolist() == [[0, 0], [1, 0], [0, 0]]
    assert binarize(p, at_least_one=True).tolist() == [[0, 1], [1, 0], [1, 0]]
    y = np.array([[0, 1], [1, 0], [1, 0]])
    assert evaluate(y, p, at_least_one=True)["exact_match"] == 1.0
    assert evaluate(y, p)["exact_match"] == pytest.approx(1 / 3)


def test_tune_thresholds_hand_computed():
    # class 0: top-k F1 = 2TP/(k+P): k=1 0.667, k=2 0.5, k=3 0.8, k=4 0.667 -> keep 3, cut between 0.3 and 0.2
    # class 1: no positives -> 0.5
    # class 2: the tie at 0.7 cannot be split: k=2 gives 0.667, k=3 0.5 -> cut between 0.7 and 0.1
    y = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]])
    p = np.array([[0.9, 0.3, 0.7], [0.8, 0.2, 0.7], [0.3, 0.9, 0.1], [0.2, 0.1, 0.05]])
    t = tune_thresholds(y, p, min_positives=1)
    assert t.tolist() == pytest.approx([0.25, 0.5, 0.4])
    assert per_class(y, p, t)["f1"].tolist() == pytest.approx([0.8, 0.0, 2 / 3])


def test_tuned_thresholds_beat_every_grid_threshold_on_the_tuning_data():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 5)) < 0.2).astype(int)
    p = np.clip(0.3 * y + 0.8 * rng.random((300, 5)), 0, 1).astype(np.float32)
    tuned = per_class(y, p, tune_thresholds(y, p, min_positives=1))["f1"].to_numpy()
    for grid_t in np.linspace(0.01, 0.99, 99):
        assert (tuned >= per_class(y, p, grid_t)["f1"].to_numpy() - 1e-12).all()


def test_classes_with_few_validation_positives_keep_the_default_threshold():
    # class 0 has 2 positives (below 5): its F1-optimal cut would be 0.15, but it keeps 0.5;
    # class 1 has 5 positives and is tuned: the cut sits between 0.4 (last positive) and 0.3.
    y = np.zeros((10, 2), dtype=int)
    y[[0, 1], 0] = 1
    y[:5, 1] = 1
    p = np.full((10, 2), 0.1)
    p[[0, 1], 0] = 0.2
    p[:5, 1] = [0.9, 0.8, 0.7, 0.6, 0.4]
    p[5:, 1] = [0.3, 0.2, 0.2, 0.1, 0.1]
    assert tune_thresholds(y, p).tolist() == pytest.approx([0.5, 0.35])
    assert tune_thresholds(y, p, min_positives=1).tolist() == pytest.approx([0.15, 0.35])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="must both be"):
        evaluate(Y, P[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate(Y, np.full(Y.shape, np.nan))
    with pytest.raises(ValueError, match="3 thresholds given for 2 classes"):
        evaluate(Y, P, [0.5, 0.5, 0.5])


def test_macro_auc_equals_sklearn_including_ties_and_skips_undefined_classes():
    rng = np.random.default_rng(2)
    y = (rng.random((150, 7)) < 0.25).astype(int)
    y[:, 5] = 0  # no positives: left out
    y[:, 6] = 1  # no negatives: left out
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random((150, 7)), 0, 1), 1)  # coarse: many ties
    expected = roc_auc_score(y[:, :5], p[:, :5], average="macro")
    assert macro_auc(y, p) == pytest.approx(expected, abs=1e-12)
