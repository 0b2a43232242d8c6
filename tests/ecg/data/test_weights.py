from __future__ import annotations

import numpy as np
import pytest

from ecg.data import DataError
from ecg.data.weights import class_weights

# 10 records; class counts 1, 2, 3, 10, 0
LABELS = np.zeros((10, 5), dtype=np.uint8)
LABELS[:1, 0] = 1
LABELS[:2, 1] = 1
LABELS[:3, 2] = 1
LABELS[:, 3] = 1


def test_log_weights_with_guard():
    # counts below e count as e: weight 1/ln(e) = 1 for 0, 1 and 2 records
    expected = [1.0, 1.0, 1 / np.log(3), 1 / np.log(10), 1.0]
    np.testing.assert_allclose(class_weights(LABELS, "log"), expected, rtol=1e-6)
    assert class_weights(LABELS, "log").dtype == np.float32


def test_pos_weight_is_negatives_over_positives():
    np.testing.assert_allclose(class_weights(LABELS, "pos_weight"), [9.0, 4.0, 7 / 3, 0.0, 10.0], rtol=1e-6)


def test_none_is_ones():
    np.testing.assert_array_equal(class_weights(LABELS, "none"), np.ones(5, np.float32))


def test_unknown_kind_lists_choices():
    with pytest.raises(DataError, match="'inverse' unknown; choose one of log, pos_weight, none"):
        class_weights(LABELS, "inverse")
