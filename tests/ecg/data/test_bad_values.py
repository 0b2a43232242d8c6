"""Issue 24 in the data layer: what each reader refuses (and still reads) now that every value goes through
`ecg.values`, files that are not regular files are never opened, and the cache key survives a broken link.
The same inputs through launch.py / ecg.train / ecg.inspect: tests/search/test_bad_input.py, tests/ecg/test_inspect.py.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from ecg.data import DataError, load_dataset, load_labels
from ecg.data.cache import source_key
from ecg.data.files import check_regular, read_bytes
from ecg.data.split import make_split, split_sizes

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


# ---- files that are not regular files ------------------------------------------------------------------------------


def test_only_regular_files_are_opened(tmp_path):
    (tmp_path / "ok.txt").write_bytes(b"1 2 3")
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "folder.txt").mkdir()
    os.symlink("loop.txt", tmp_path / "loop.txt")
    os.symlink("/nowhere/x", tmp_path / "dangling.txt")
    assert read_bytes(tmp_path / "ok.txt") == b"1 2 3"
    for name, why in [("fifo.txt", "a FIFO, not a file that can be read"),
                      ("folder.txt", "a folder, not a file that can be read"),
                      ("loop.txt", "cannot read (Too many levels of symbolic links)"),
                      ("dangling.txt", "cannot read (No such file or directory)")]:
        with pytest.raises(DataError) as refused:
            check_regular(tmp_path / name)
        assert str(refused.value) == f"{tmp_path / name}: {why}"


def test_the_cache_key_survives_broken_links_and_notices_when_they_are_mended(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    os.symlink("loop.txt", tmp_path / "loop.txt")
    os.symlink(tmp_path / "later.txt", tmp_path / "b.txt")
    files = [tmp_path / "a.txt", tmp_path / "loop.txt", tmp_path / "b.txt"]
    broken = source_key(files, {})
    assert broken == source_key(files, {})
    (tmp_path / "later.txt").write_text("now here")
    assert source_key(files, {}) != broken


# ---- WFDB headers ---------------------------------------------------------------------------------------------------


def _record(folder: Path, name: str, record_line: str, dx: str = "164889003", comments: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{name}.mat", {"val": np.zeros((12, 1000), np.int16)}, format="4")
    lines = [record_line.format(name=name), *(f"{name}.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS),
             *(comments or ("# Age: 60", "# Sex: Male", f"# Dx: {dx}"))]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.hea"


@pytest.mark.parametrize("record_line, message", [
    ("{name} 12 0 1000", ", line 1: sampling rate '0' is not a number of Hz from 1 to 100000"),
    ("{name} 12 -500 1000", ", line 1: sampling rate '-500' is not a number of Hz from 1 to 100000"),
    ("{name} 12 fast 1000", ", line 1: sampling rate 'fast' is not a number of Hz from 1 to 100000"),
    ("{name} 12 500000000 1000", ", line 1: sampling rate '500000000' is not a number of Hz from 1 to 100000"),
    ("{name} 12 100 -5", ", line 1: the number of samples must be an integer >= 0, got '-5'"),
    ("{name} 11 100 1000", ": the record line says 11 signals, but 12 signal line(s) follow it"),
    ("{name} 13 100 1000", ": the record line says 13 signals, but 12 signal line(s) follow it"),
    ("{name} 0 100 1000", ": not a WFDB header"),
])
def test_a_record_line_that_cannot_be_right_is_named(tmp_path, record_line, message):
    header = _record(tmp_path, "r1", record_line)
    _record(tmp_path, "r2", "{name} 12 100 1000", dx="426783006")
    with pytest.raises(DataError) as refused:
        load_dataset(tmp_path, fs=100, length=1000, use_cache=False)
    assert f"(first: {header}{message}" in str(refused.value)


def test_the_rate_field_keeps_its_counter_frequency_form(tmp_path):
    _record(tmp_path, "r1", "{name} 12 100/1000(0) 1000")
    _record(tmp_path, "r2", "{name} 12 100 1000", dx="426783006")
    assert len(load_dataset(tmp_path, fs=100, length=1000, use_cache=False)) == 2


def test_a_fifo_named_as_a_signal_file_is_refused_not_read(tmp_path):
    _record(tmp_path, "r1", "{name} 12 100 1000")
    _record(tmp_path, "r2", "{name} 12 100 1000", dx="426783006")
    (tmp_path / "r1.mat").unlink()
    os.mkfifo(tmp_path / "r1.mat")
    with pytest.raises(DataError, match=r"r1\.mat: a FIFO, not a file that can be read"):
        load_dataset(tmp_path, fs=100, length=1000, use_cache=False)


@pytest.mark.parametrize("age", ["inf", "999", "-1", "1e300", "sixty"])
def test_header_ages_outside_0_to_125_are_refused(tmp_path, age):
    _record(tmp_path, "r1", "{name} 12 100 1000", comments=(f"# Age: {age}", "# Dx: 164889003"))
    with pytest.raises(DataError, match=f"r1.hea: age '{age}' is not a number of years from 0 to 125"):
        load_labels(tmp_path)


def test_labels_csv_rows_naming_no_record_load_with_skip_bad_records(tmp_path):
    _record(tmp_path / "db", "r1", "{name} 12 100 1000")
    _record(tmp_path / "db", "r2", "{name} 12 100 1000")
    (tmp_path / "labels.csv").write_text("record,labels\nr1,AF\nr2,NORM\nr9,AF\n")
    with pytest.raises(DataError, match=r"\(first: 'r9'\); pass skip_bad_records=True \(--skip-bad-records\)"):
        load_dataset(tmp_path / "db", labels=tmp_path / "labels.csv", fs=100, length=1000, use_cache=False)
    data = load_dataset(tmp_path / "db", labels=tmp_path / "labels.csv", fs=100, length=1000, use_cache=False,
                        skip_bad_records=True)
    assert data.record_ids == ["r1", "r2"] and data.class_names == ["AF", "NORM"]


# ---- .npz fields ----------------------------------------------------------------------------------------------------


def _npz(path: Path, **arrays) -> Path:
    base = {"signals": np.zeros((4, 8, 500), np.int16), "labels": np.array([[1, 0], [0, 1]] * 2, np.uint8),
            "class_names": np.array(["A", "B"])}
    np.savez(path, **{**base, **arrays})
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"labels": np.array([[1, 0], [0, 1]] * 2).astype(object)}, "'labels' is an array of Python objects"),
    ({"units": np.array("mV", dtype=object)}, "'units' is an array of Python objects"),
    ({"record_ids": np.array(["a", "b", "c", "d"], dtype=object)}, "'record_ids' is an array of Python objects"),
    ({"fs": np.array("fast")}, "'fs' sampling rate 'fast' is not a number of Hz"),
    ({"fs": np.array(0.001)}, "'fs' sampling rate '0.001' is not a number of Hz"),
    ({"record_ids": np.array(["a", "a", "b", "c"])}, "'record_ids' holds 'a' twice (at 0 and 1)"),
    ({"class_names": np.array(["A", "A"])}, "'class_names' holds 'A' twice (at 0 and 1)"),
    ({"class_names": np.array(["A", "\x1b[2J"])}, "class name '\\x1b[2J' holds control characters"),
    ({"lead_names": np.array(["I"] * 8)}, "'lead_names' holds 'I' twice (at 0 and 1)"),
    ({"age": np.array([60.0, np.inf, 70, 80])}, "record 1 '1': age 'inf' is not a number of years from 0 to 125"),
    ({"age": np.array([60.0, 70.0])}, "'age' has shape (2,), expected (4,)"),
    ({"sex": np.array([1.0, 2.0, 0.0, np.nan])}, "record 1 '1': sex '2.0' is not 1 (male), 0 (female) or NaN"),
    ({"signals": np.zeros((4, 8, 0), np.int16)}, "'signals' holds no samples (shape (4, 8, 0))"),
    ({"signals": np.zeros((4, 8, 500), complex)}, "'signals' has dtype complex128, expected numbers"),
])
def test_npz_fields_are_refused_in_one_line_naming_the_field(tmp_path, arrays, message):
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError) as refused:
        load_dataset(path, fs=50, length=500, use_cache=False)
    assert str(refused.value).startswith(f"{path}: {message}") and "\n" not in str(refused.value)


def test_a_long_npz_record_at_another_rate_is_cut_before_it_is_resampled(tmp_path):
    """Only the samples the first `length` at the target rate need are resampled (as the WFDB reader reads them):
    a one-minute record gives what its first ten seconds give, and a long record costs what a short one does."""
    t = np.arange(250 * 60) / 250
    minute = (np.sin(2 * np.pi * 1.3 * t) * 1.5)[None, None, :].repeat(8, axis=1).repeat(4, axis=0)  # mV
    long = load_dataset(_npz(tmp_path / "long.npz", signals=minute, fs=np.array(250)), fs=500, length=5000,
                        use_cache=False)
    cut = load_dataset(_npz(tmp_path / "cut.npz", signals=minute[..., :2500], fs=np.array(250)), fs=500,
                       length=5000, use_cache=False)
    np.testing.assert_array_equal(long.signals, cut.signals)


# ---- PTB-XL tables --------------------------------------------------------------------------------------------------


def _ptbxl(root: Path, **row) -> Path:
    root.mkdir()
    (root / "scp_statements.csv").write_text(",diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
                                             "NORM,1.0,,,NORM,NORM\nSR,,,1.0,,\n")
    values = {"ecg_id": [1, 2], "age": [60, 70], "sex": [0, 1], "scp_codes": ["{'NORM': 100.0}", "{'SR': 0.0}"],
              "strat_fold": [1, 10], "filename_lr": ["r1_lr", "r2_lr"], "filename_hr": ["r1_hr", "r2_hr"]}
    for key, value in row.items():
        values[key] = [value, values[key][1]]
    pd.DataFrame(values).to_csv(root / "ptbxl_database.csv", index=False)
    return root


@pytest.mark.parametrize("codes, expected", [
    ("{'NORM': 100.0, 'SR': 0.0}", ["NORM", "SR"]), ('{"NORM": 1e2}', ["NORM"]), ("{'NORM': 80.0,}", ["NORM"]),
    ("{ 'SR' : .5 }", ["SR"]),
])
def test_scp_codes_as_ptbxl_writes_them(tmp_path, codes, expected):
    data, _ = load_labels(_ptbxl(tmp_path / "p", scp_codes=codes))
    assert [c for c, on in zip(data.class_names, data.labels[0]) if on] == expected


@pytest.mark.parametrize("codes", [
    "{'NORM': " + "-" * 100_000 + "1}",  # ast.literal_eval: MemoryError
    "{'NORM': " + "[" * 5_000 + "]" * 5_000 + "}",
    "{'NORM': 100.0, 'SR' 0.0}", "{'NORM': __import__('os')}", "['NORM']", "{,}", "{'NORM': 1}}",
])
def test_any_other_scp_codes_text_is_refused_quoted(tmp_path, codes):
    with pytest.raises(DataError) as refused:
        load_labels(_ptbxl(tmp_path / "p", scp_codes=codes))
    message = str(refused.value)
    assert "ptbxl_database.csv, line 2: scp_codes " in message and "is not a dict of statements" in message
    assert len(message) < len(str(tmp_path)) + 200  # the value quoted in 80 characters


@pytest.mark.parametrize("age, expected", [(300, 90.0), (89, 89.0), ("", math.nan)])
def test_ptbxl_ages_read_as_its_authors_code_them(tmp_path, age, expected):
    data, _ = load_labels(_ptbxl(tmp_path / "p", age=age))
    assert data.age[0] == expected or (math.isnan(expected) and math.isnan(data.age[0]))


@pytest.mark.parametrize("age", ["inf", "301", "-3", "1e9"])
def test_ptbxl_ages_beyond_its_own_code_are_refused(tmp_path, age):
    with pytest.raises(DataError, match="ptbxl_database.csv, line 2: age '.*' is not a number of years from 0 to 125"):
        load_labels(_ptbxl(tmp_path / "p", age=age))


# ---- the split ------------------------------------------------------------------------------------------------------


def test_one_class_is_split_stratified_by_having_it_or_not():
    labels = np.zeros((100, 1), np.uint8)
    labels[::4] = 1  # 25 of 100
    assignment = make_split(labels, seed=0)
    # the sizes any two-class split of 100 gets (val: ceil(0.125 x 80) = 11 after floating point), and the
    # positives in proportion: 25 x 0.7 / 0.1 / 0.2, rounded by the stratifier
    assert split_sizes(assignment) == {"train": 69, "val": 11, "test": 20}
    assert [int(labels[assignment == s].sum()) for s in ("train", "val", "test")] == [17, 3, 5]


def test_no_class_too_few_records_and_a_seed_beyond_32_bits_are_refused():
    with pytest.raises(DataError, match=r"no classes to split by: labels have shape \(5, 0\)"):
        make_split(np.zeros((5, 0), np.uint8))
    with pytest.raises(DataError, match=r"2 record\(s\) are too few to split 0.7:0.1:0.2 into train, val and test"):
        make_split(np.ones((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"split seed must be an integer from 0 to 2\*\*32 - 1"):
        make_split(np.eye(10, 2, dtype=np.uint8), seed=2**32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few for coverage; the point is the seed of the val split
        assert len(make_split(np.eye(10, 2, dtype=np.uint8), seed=2**32 - 1)) == 10  # val's seed wraps to 0


def test_records_whose_signals_cannot_fit_in_memory_are_refused_before_they_are_read(tmp_path, monkeypatch):
    """Every reader allocates its records' int16 array in one place (ecg.data.parallel); more than half the
    machine's memory there is one line at once, not a MemoryError after the records were parsed."""
    for name in ("r1", "r2"):
        _record(tmp_path, name, "{name} 12 100 1000", dx="164889003" if name == "r1" else "426783006")
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 8}  # a 32 KiB machine: half is less than 2 x 8 x 1000 x 2 bytes
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    with pytest.raises(DataError, match=r"^these records at this rate and length: the signals alone would take "
                                        r"0\.0 GiB \(2 records x 8 leads x 1000 samples as int16\), more than half "
                                        r"this machine's 0\.0 GiB$"):
        load_dataset(tmp_path, fs=100, length=1000, use_cache=False)
