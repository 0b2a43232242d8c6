from __future__ import annotations

import numpy as np
import pytest

from ecg.data import UNITS_PER_MV, DataError, load_dataset, load_labels


def save(path, small, **overrides):
    arrays = dict(signals=small.signals, labels=small.labels, class_names=np.array(small.class_names),
                  age=small.age, sex=small.sex, record_ids=np.array(small.record_ids))
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_round_trip(tmp_path, small):
    dataset = load_dataset(save(tmp_path / "d.npz", small), length=small.n_samples, use_cache=False)
    np.testing.assert_array_equal(dataset.signals, small.signals)
    np.testing.assert_array_equal(dataset.labels, small.labels)
    np.testing.assert_array_equal(dataset.age, small.age)
    assert dataset.class_names == small.class_names and dataset.record_ids == small.record_ids


def test_optional_arrays_default_to_missing(tmp_path, small):
    path = save(tmp_path / "d.npz", small, age=None, sex=None, record_ids=None)
    dataset, present = load_labels(path)
    assert np.isnan(dataset.age).all() and np.isnan(dataset.sex).all()
    assert dataset.record_ids == [str(i) for i in range(6)] and present == 6


def test_float_signals_are_millivolts_and_leads_by_name(tmp_path, small):
    mv = np.zeros((6, 2, small.n_samples), dtype=np.float32)
    mv[:, 1] = 1.0
    path = save(tmp_path / "d.npz", small, signals=mv, lead_names=np.array(["ii", "V1"]))
    dataset = load_dataset(path, leads=("V1", "II"), length=small.n_samples, use_cache=False)
    assert (dataset.signals[:, 0] == round(UNITS_PER_MV)).all() and (dataset.signals[:, 1] == 0).all()


def test_nan_in_signals_names_file_and_record(tmp_path, small):
    mv = small.signals.astype(np.float32)
    mv[3, 2, 7] = np.nan
    path = save(tmp_path / "bad.npz", small, signals=mv)
    with pytest.raises(DataError, match=r"bad\.npz: NaN in 'signals' \(1 values; first at record 3 '100003', "
                                        r"lead 2, sample 7\)"):
        load_dataset(path, length=small.n_samples, use_cache=False)


def test_missing_array_is_named(tmp_path, small):
    path = tmp_path / "d.npz"
    np.savez(path, signals=small.signals, labels=small.labels)
    with pytest.raises(DataError, match=r"d\.npz: missing array\(s\) class_names"):
        load_labels(path)


def test_lead_count_without_names_must_match(tmp_path, small):
    path = save(tmp_path / "d.npz", small)
    with pytest.raises(DataError, match=r"d\.npz: 8 leads and no 'lead_names' array; cannot choose 12 leads"):
        load_dataset(path, leads=[f"L{i}" for i in range(12)], length=small.n_samples, use_cache=False)


def test_missing_lead_by_name(tmp_path, small):
    path = save(tmp_path / "d.npz", small, lead_names=np.array(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]))
    with pytest.raises(DataError, match=r"d\.npz: has no lead 'V9'"):
        load_dataset(path, leads=("I", "V9"), length=small.n_samples, use_cache=False)
    derived = load_dataset(path, leads=("III",), length=small.n_samples, use_cache=False)
    np.testing.assert_array_equal(derived.signals[:, 0], small.signals[:, 1].astype(int) - small.signals[:, 0])
