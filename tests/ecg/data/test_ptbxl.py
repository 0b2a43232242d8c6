"""PTB-XL from its layout: the benchmark's label aggregation per task, official folds, rates, leads, errors.

The `ptbxl_dir` fixture (tests/conftest.py) writes 60 records whose scp_codes cycle through PTBXL_CODES:
  0 {NORM 100, SR 0}   1 {IMI 50, LVH 100, SR 0}   2 {ASMI 100, ABQRS 0}   3 {AFIB 0, PVC 100}
  4 {CLBBB 100, NDT 15, STACH 0}   5 {NORM 80, SBRAD 0}
so each code set is carried by 10 records, and strat_fold is i % 10 + 1.
"""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecg.data import ALL_12_LEADS, HEFEI_LEADS, UNITS_PER_MV, DataError, load_dataset, load_labels
from ecg.data.loader import data_convention, detect_format, official_split, resolve_split

# task -> (classes in the vocabulary, {class: records} for the classes present, records left out)
EXPECTED = {
    "all": (71, {"NORM": 20, "SR": 20, "IMI": 10, "LVH": 10, "ASMI": 10, "ABQRS": 10, "AFIB": 10, "PVC": 10,
                 "CLBBB": 10, "NDT": 10, "STACH": 10, "SBRAD": 10}, 0),
    "diagnostic": (44, {"NORM": 20, "IMI": 10, "LVH": 10, "ASMI": 10, "CLBBB": 10, "NDT": 10}, 10),
    "subdiagnostic": (23, {"NORM": 20, "IMI": 10, "LVH": 10, "AMI": 10, "CLBBB": 10, "STTC": 10}, 10),
    "superdiagnostic": (5, {"NORM": 20, "MI": 20, "HYP": 10, "CD": 10, "STTC": 10}, 10),
    "form": (19, {"ABQRS": 10, "PVC": 10, "NDT": 10}, 30),
    "rhythm": (12, {"SR": 20, "AFIB": 10, "STACH": 10, "SBRAD": 10}, 10),
}


def _labels(root, task):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, present = load_labels(root, task=task)
    return data, present, [str(w.message) for w in caught]


@pytest.mark.parametrize("task", list(EXPECTED))
def test_each_task_aggregates_as_the_benchmark(ptbxl_dir, task):
    n_classes, present_counts, left_out = EXPECTED[task]
    data, present, messages = _labels(ptbxl_dir, task)
    assert data.n_classes == n_classes and data.class_names == sorted(data.class_names)
    counts = {name: int(c) for name, c in zip(data.class_names, data.labels.sum(axis=0)) if c}
    assert counts == present_counts
    assert len(data) == present == 60 - left_out
    assert data.labels.sum(axis=1).min() >= 1  # records without a label in the task are left out ...
    if left_out:  # ... and counted
        assert any(f"{left_out} of 60 records have no label in PTB-XL task {task!r}" in m for m in messages)


def test_likelihood_is_ignored_as_in_the_benchmark(ptbxl_dir):
    # SR is listed with likelihood 0.0 in records 0 and 1 of each cycle and still counts: 20 records
    data, _, _ = _labels(ptbxl_dir, "rhythm")
    sr = data.labels[:, data.class_names.index("SR")]
    assert int(sr.sum()) == 20
    ids = [int(r) for r, s in zip(data.record_ids, sr) if s]
    assert all((i - 1) % 6 in (0, 1) for i in ids)


def test_official_split_is_strat_fold_and_the_default(ptbxl_dir):
    data, _, _ = _labels(ptbxl_dir, "all")
    assignment = official_split(ptbxl_dir, data.record_ids)
    folds = (np.array([int(r) for r in data.record_ids]) - 1) % 10 + 1
    assert (assignment[folds <= 8] == "train").all()
    assert (assignment[folds == 9] == "val").all() and (assignment[folds == 10] == "test").all()
    assert resolve_split(ptbxl_dir, None) == "official"
    assert data_convention(ptbxl_dir).to_dict() == {"task": "all", "split": "official", "metric": "val_macro_auc"}
    assert data_convention(ptbxl_dir, "rhythm").task == "rhythm"


def test_no_official_split_elsewhere(cinc_dir):
    assert resolve_split(cinc_dir, None) == "stratified"
    with pytest.raises(DataError, match="wfdb data has no official split .PTB-XL has one.; use --split stratified"):
        resolve_split(cinc_dir, "official")
    with pytest.raises(DataError, match="no official split"):
        official_split(cinc_dir, ["E07500"])


@pytest.mark.parametrize("fs,folder,suffix", [(100, "records100", "lr"), (500, "records500", "hr")])
def test_signals_come_from_the_folder_of_the_rate(ptbxl_dir, tmp_path, fs, folder, suffix):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_dataset(ptbxl_dir, task="superdiagnostic", fs=fs, length=10 * fs, leads=ALL_12_LEADS,
                            cache_dir=tmp_path)
        hefei = load_dataset(ptbxl_dir, task="superdiagnostic", fs=fs, length=10 * fs, cache_dir=tmp_path)
    assert data.signals.shape == (50, 12, 10 * fs) and data.fs == fs
    record = wfdb.rdrecord(str(ptbxl_dir / folder / "00000" / f"00002_{suffix}"))
    position = data.record_ids.index("2")
    np.testing.assert_array_equal(data.signals[position],
                                  np.round(record.p_signal.T * UNITS_PER_MV).astype(np.int16))
    # the 8 leads I, II, V1-V6 are rows 0, 1, 6-11 of the 12
    assert hefei.lead_names == list(HEFEI_LEADS)
    np.testing.assert_array_equal(hefei.signals, data.signals[:, [0, 1, 6, 7, 8, 9, 10, 11]])


def test_age_and_sex_conventions(ptbxl_dir):
    data, _, _ = _labels(ptbxl_dir, "all")
    # records 1-3: age 300 (PTB-XL's "over 89") -> 90, missing, 63; sex 0 (male) -> 1, 1 (female) -> 0
    assert data.age[0] == 90.0 and np.isnan(data.age[1]) and data.age[2] == 63.0
    assert data.sex[:3].tolist() == [1.0, 0.0, 1.0]


def _copy_with(ptbxl_dir, tmp_path, row: int, column: str, value: object):
    root = tmp_path / "ptbxl"
    root.mkdir()
    shutil.copy(ptbxl_dir / "scp_statements.csv", root)
    frame = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(root / "ptbxl_database.csv", index=False)
    return root


@pytest.mark.parametrize("column,value,message", [
    ("scp_codes", "NORM", r"line 3: scp_codes 'NORM' is not a dict"),
    ("scp_codes", "{'NOPE': 100.0}", r"line 3: statement 'NOPE' is not in scp_statements.csv"),
    ("strat_fold", 11, r"line 3: strat_fold '11' is not 1-10"),
    ("sex", 2, r"line 3: sex '2' is not 0 \(male\) or 1 \(female\)"),
])
def test_bad_rows_name_the_file_and_line(ptbxl_dir, tmp_path, column, value, message):
    root = _copy_with(ptbxl_dir, tmp_path, 1, column, value)
    with pytest.raises(DataError, match=r"ptbxl_database.csv, " + message):
        load_labels(root, task="all")


def test_detection_and_wrong_task(ptbxl_dir, cinc_dir):
    assert detect_format(ptbxl_dir).name == "ptbxl"
    assert detect_format(ptbxl_dir / "ptbxl_database.csv").name == "ptbxl"
    with pytest.raises(DataError, match="--task diagnostic needs a PTB-XL folder"):
        load_labels(cinc_dir, task="diagnostic")
    with pytest.raises(DataError, match="--task cinc2021 needs a WFDB folder"):
        load_labels(ptbxl_dir, task="cinc2021")


def test_missing_signal_files_are_an_error_or_skipped(ptbxl_dir, tmp_path):
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_dir, root)
    (root / "records100" / "00000" / "00001_lr.dat").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"1 of 60 records have no signal files "
                                            r"\(first: 'records100/00000/00001_lr"):
            load_dataset(root, fs=100, length=1000, use_cache=False)
        data = load_dataset(root, fs=100, length=1000, present_only=True, use_cache=False)
        skipped = load_dataset(root, fs=100, length=1000, skip_bad_records=True, use_cache=False)
    assert len(data) == 59 and "1" not in data.record_ids and data.skipped == {}
    # --skip-bad-records, which the error names: the same records, the missing one listed with why
    assert skipped.record_ids == data.record_ids
    assert skipped.skipped == {"1": f"{root / 'records100/00000/00001_lr.hea'}: no such header and signal file"}


def test_an_unreadable_signal_is_one_line_or_skipped_with_its_reason(ptbxl_dir, tmp_path):
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_dir, root)
    (root / "records100" / "00000" / "00002_lr.dat").write_bytes(b"\x00" * 10)  # cut short: not 1000 samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"1 of 60 records cannot be read \(first: .*00002_lr") as refused:
            load_dataset(root, fs=100, length=1000, use_cache=False)
        assert "\n" not in str(refused.value) and "--skip-bad-records" in str(refused.value)
        data = load_dataset(root, fs=100, length=1000, skip_bad_records=True, use_cache=False)
    assert len(data) == 59 and "2" not in data.record_ids and list(data.skipped) == ["2"]


def test_a_labels_csv_is_refused_not_ignored(ptbxl_dir, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("record,labels\n1,NORM\n")
    with pytest.raises(DataError, match="--labels does not apply to PTB-XL"):
        load_labels(ptbxl_dir, labels=csv)
