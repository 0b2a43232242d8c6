"""The PhysioNet/CinC 2021 Challenge metric on hand-made cases whose value is worked out here."""
from __future__ import annotations

import numpy as np
import pytest

from ecg.challenge import challenge_metric, challenge_score, label_score, modified_confusion_matrix, per_source
from ecg.data.cinc2021 import apply_task, scoring

# A toy 3-class reward matrix; class 2 plays the normal class.
W = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])


def reference_metric(weights, labels, outputs, normal_index):
    """evaluate_model.py's loops, transcribed literally: the check on the vectorised version."""
    def confusion(labels, outputs):
        a = np.zeros((labels.shape[1], labels.shape[1]))
        for i in range(len(labels)):
            normalization = float(max(np.sum(np.any((labels[i, :], outputs[i, :]), axis=0)), 1))
            for j in range(labels.shape[1]):
                if labels[i, j]:
                    for k in range(labels.shape[1]):
                        if outputs[i, k]:
                            a[j, k] += 1.0 / normalization
        return a
    observed = np.nansum(weights * confusion(labels, outputs))
    correct = np.nansum(weights * confusion(labels, labels))
    inactive_outputs = np.zeros_like(labels)
    inactive_outputs[:, normal_index] = 1
    inactive = np.nansum(weights * confusion(labels, inactive_outputs))
    return 0.0 if correct == inactive else (observed - inactive) / (correct - inactive)


def test_modified_confusion_matrix_normalises_by_the_union_of_labels_and_outputs():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    outputs = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    # record 1: union {0} -> A[0,0] += 1; record 2: union {0,1} -> A[1,0] += 1/2;
    # record 3: union {0,1,2} -> A[0,1], A[0,2], A[1,1], A[1,2] += 1/3 each.
    expected = np.array([[1, 1 / 3, 1 / 3], [1 / 2, 1 / 3, 1 / 3], [0, 0, 0]])
    np.testing.assert_allclose(modified_confusion_matrix(labels, outputs), expected)


def test_toy_score_worked_out_by_hand():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    outputs = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    # observed = 1*1 + 0.5*(1/2) + (0.5 + 0 + 1 + 0.2)/3 = 109/60
    # correct: A = [[1.5, .5], [.5, 1.5]] on classes 0,1 -> 1.5 + .25 + .25 + 1.5 = 3.5 = 210/60
    # inactive (only class 2): A[0,2] = 1/2 + 1/3, A[1,2] = 1/2 + 1/3 -> 0 + 0.2 * 5/6 = 10/60
    # score = (109 - 10) / (210 - 10) = 0.495
    assert challenge_metric(labels, outputs, W, normal_index=2) == pytest.approx(0.495)


def test_always_normal_scores_zero_and_perfect_scores_one():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    normal = np.zeros_like(labels)
    normal[:, 2] = 1
    assert challenge_metric(labels, normal, W, 2) == 0.0
    assert challenge_metric(labels, labels, W, 2) == pytest.approx(1.0)
    # every record normal: correct == inactive, and the Challenge defines the score as 0
    only_normal = np.array([[0, 0, 1], [0, 0, 1]])
    assert challenge_metric(only_normal, only_normal, W, 2) == 0.0


def test_vectorised_metric_equals_the_challenge_loops_on_random_outputs():
    score = scoring()
    rng = np.random.default_rng(3)
    labels = (rng.random((60, 26)) < 0.1).astype(int)
    outputs = (rng.random((60, 26)) < 0.15).astype(int)
    expected = reference_metric(score.weights, labels, outputs, score.normal_index)
    assert challenge_metric(labels, outputs, score.weights, score.normal_index) == pytest.approx(expected, abs=1e-12)


def test_real_weights_with_an_equivalent_pair(coded):
    # RBBB (59118001) is scored as CRBBB (713427006): a model answering the pair's class gets full credit.
    data = apply_task(coded([["59118001"], ["164889003"], ["426783006"]], prefix="E"), "cinc2021")
    names = data.class_names
    col = {name: names.index(name) for name in ("CRBBB|RBBB", "AF", "AFL", "NSR")}
    w = scoring().weights
    assert (w[col["CRBBB|RBBB"], col["NSR"]], w[col["AF"], col["AFL"]], w[col["AF"], col["NSR"]]) == (0.35, 0.5, 0.25)
    outputs = np.zeros_like(data.labels, dtype=float)
    outputs[0, col["CRBBB|RBBB"]] = 1  # right (the equivalent class)
    outputs[1, col["AFL"]] = 1  # AF answered as AFL: weight 0.5, shared by a union of 2 classes
    outputs[2, col["NSR"]] = 1  # right
    # observed = 1 + 0.5/2 + 1 = 2.25; correct = 3;
    # inactive = 0.35/2 (RBBB record: union {CRBBB|RBBB, NSR}) + 0.25/2 (AF record) + 1 (NSR record) = 1.3
    # score = (2.25 - 1.3) / (3 - 1.3) = 19/34
    assert challenge_score(data.labels, outputs, names) == pytest.approx(19 / 34)
    assert label_score(data.labels, outputs >= 0.5) == pytest.approx(19 / 34)
    normal = np.zeros_like(outputs)
    normal[:, col["NSR"]] = 1
    assert challenge_score(data.labels, normal, names) == 0.0
    assert challenge_score(data.labels, data.labels.astype(float), names) == pytest.approx(1.0)


def test_score_is_none_outside_the_challenge_vocabulary():
    assert challenge_score(np.eye(3), np.eye(3), ["a", "b", "c"]) is None
    assert per_source(np.eye(3), np.eye(3), ["a", "b", "c"], ["x", "y", "z"]).empty


def test_rows_per_source(coded):
    data = apply_task(coded([["164889003"], ["426783006"], ["164889003"], ["426783006"]], prefix="E"), "cinc2021")
    data.record_ids = ["E00001", "HR00002", "training/ningbo/JS00003", "JS00004"]
    af, nsr = data.class_names.index("AF"), data.class_names.index("NSR")
    probs = np.zeros(data.labels.shape)
    probs[[0, 2], af] = 0.3  # AF records: AF at 0.3 -> only a threshold <= 0.3 finds them
    probs[[1, 3], nsr] = 0.9
    # at 0.5 the AF records get no output: observed = 2 (NSR records), correct = 4,
    # inactive = 2 * 0.25/2 (AF records) + 2 = 2.25 -> (2 - 2.25) / (4 - 2.25) = -1/7
    assert challenge_score(data.labels, probs, data.class_names, 0.5) == pytest.approx(-1 / 7)
    tuned = np.full(data.n_classes, 0.25)
    rows = per_source(data.labels, probs, data.class_names, data.record_ids, tuned)
    assert rows[["source", "database", "records"]].values.tolist() == [
        ["E", "Georgia", 1], ["HR", "PTB-XL", 1], ["JS", "Chapman-Shaoxing/Ningbo", 2]]
    # one AF record (E) scored alone: correct = 1, inactive = 0.25/2 -> perfect output gives 1
    assert rows["challenge_score"].tolist() == pytest.approx([1.0, 0.0, 1.0])  # HR: only NSR, correct == inactive
