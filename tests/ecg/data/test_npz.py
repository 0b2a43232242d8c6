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


# ---- issue 12: inf, values that would clip, units, zero records ----------------------------------------------


def test_inf_is_refused_like_nan(tmp_path, small):
    mv = small.signals.astype(np.float32) / 1000
    mv[4, 0, 9] = -np.inf
    path = save(tmp_path / "inf.npz", small, signals=mv)
    with pytest.raises(DataError, match=r"inf\.npz: inf in 'signals' \(1 values; first at record 4 '100004', "
                                        r"lead 0, sample 9\)$"):
        load_dataset(path, length=small.n_samples, use_cache=False)


def test_microvolts_saved_as_floats_are_refused_with_the_fraction_and_the_fix(tmp_path, small):
    microvolts = small.signals.astype(np.float32) * 4.88  # up to ~14,600 uV, read as mV: far beyond 160 mV
    path = save(tmp_path / "uv.npz", small, signals=microvolts)
    with pytest.raises(DataError) as caught:
        load_dataset(path, length=small.n_samples, use_cache=False)
    message = str(caught.value)
    outside = int((np.abs(microvolts) > 32767.5 / UNITS_PER_MV).sum())
    assert "\n" not in message and outside > 0
    assert message.startswith(f"{path}: {outside / microvolts.size:.2%} of the signal values ({outside}) lie "
                              "beyond +-159.9 mV")
    assert message.endswith("state their unit with a 'units' array in the .npz ('uV', 'mV' or 'V')")


def test_units_entry_states_the_unit(tmp_path, small):
    microvolts = small.signals.astype(np.float64) * 4.88
    path = save(tmp_path / "uv.npz", small, signals=microvolts, units=np.array("uV"))
    dataset = load_dataset(path, length=small.n_samples, use_cache=False)
    np.testing.assert_array_equal(dataset.signals, small.signals)  # 4.88 uV is one Hefei unit
    ints = save(tmp_path / "uv_int.npz", small, signals=np.rint(microvolts).astype(np.int32), units=np.array("uV"))
    assert np.abs(load_dataset(ints, length=small.n_samples, use_cache=False).signals.astype(int)
                  - small.signals).max() <= 1


def test_unknown_units_are_named(tmp_path, small):
    path = save(tmp_path / "d.npz", small, units=np.array("mmHg"))
    with pytest.raises(DataError, match=r"d\.npz: 'units' is 'mmHg'; use 'uV', 'mV' or 'V'$"):
        load_dataset(path, length=small.n_samples, use_cache=False)


def test_zero_records_is_one_line(tmp_path, small):
    path = tmp_path / "empty.npz"
    np.savez(path, signals=np.zeros((0, 8, 50), np.int16), labels=np.zeros((0, 3), np.uint8),
             class_names=np.array(small.class_names))
    for read in (load_labels, lambda p: load_dataset(p, length=50, use_cache=False)):
        with pytest.raises(DataError, match=r"empty\.npz: holds no records \('labels' has shape \(0, 3\)\)$"):
            read(path)
