from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from functools import partial

from ecg.data import ALL_12_LEADS, DataError, load_dataset, load_labels
from ecg.data.hefei import find_hefei_files, parse_record, write_hefei
from ecg.data.parallel import parse_all

LENGTH = 50  # samples per record of the conftest datasets

README_COUNTS = [3, 1124, 16, 3479, 1124, 120, 64, 52, 16, 286, 142, 25, 551, 25, 35, 32, 23, 414, 5264, 22, 9501,
                 7, 299, 16, 29, 34, 543, 314, 901, 418, 4895, 126, 35, 60]


def load(folder: Path, **kwargs):
    return load_dataset(folder, length=LENGTH, use_cache=False, **kwargs)


# ---- the real round-2 files ---------------------------------------------------------------------------------


def test_real_labels_records_classes_and_counts(hefei_dir):
    dataset, present = load_labels(hefei_dir)
    class_file = (hefei_dir / "hf_round2_arrythmia.txt").read_text(encoding="utf-8").split()
    assert len(dataset) == 20036
    assert dataset.class_names == class_file and len(class_file) == 34
    assert dataset.labels.sum(axis=0).tolist() == README_COUNTS
    assert int(np.isnan(dataset.age).sum()) == 1590 and int(np.isnan(dataset.sex).sum()) == 1503
    assert present == 10
    assert dataset.signals is None


def test_real_present_signals_equal_file_contents(hefei_dir, tmp_path):
    dataset = load_dataset(hefei_dir, present_only=True, cache_dir=tmp_path)
    files = sorted((hefei_dir / "hf_round2_train").glob("*.txt"))
    assert dataset.record_ids == [f.stem for f in files]
    assert dataset.signals.shape == (10, 8, 5000) and dataset.signals.dtype == np.int16
    for signal, file in zip(dataset.signals, files):
        expected = np.loadtxt(file, skiprows=1, dtype=np.int64).T
        np.testing.assert_array_equal(signal, expected)


def test_real_missing_signal_files_named_with_count(hefei_dir):
    with pytest.raises(DataError, match=r"20026 of 20036 listed records have no signal file.*first: '100020\.txt'"):
        load_dataset(hefei_dir, use_cache=False)


# ---- written folders ------------------------------------------------------------------------------------------


def test_write_then_read_round_trip(hefei_folder, small):
    dataset = load(hefei_folder)
    np.testing.assert_array_equal(dataset.signals, small.signals)
    np.testing.assert_array_equal(dataset.labels, small.labels)
    np.testing.assert_array_equal(dataset.age, small.age)  # NaN == NaN here
    np.testing.assert_array_equal(dataset.sex, small.sex)
    assert dataset.class_names == small.class_names and dataset.record_ids == small.record_ids


def test_label_file_format_has_trailing_tab_and_empty_fields(hefei_folder):
    lines = (hefei_folder / "ecg_train.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith("\t") and lines[0].startswith("100000.txt\t")
    assert lines[1].split("\t")[1] == ""  # record 1 has no age
    assert lines[2].split("\t")[2] == ""  # record 2 has no sex
    header = (hefei_folder / "ecg_train" / "100000.txt").read_text().splitlines()[0]
    assert header == "I II V1 V2 V3 V4 V5 V6"


def test_explicit_paths_and_label_file_as_path(hefei_folder, tmp_path):
    files = find_hefei_files(hefei_folder / "ecg_train.txt")
    assert files.class_file == hefei_folder / "ecg_arrythmia.txt"
    assert files.record_dir == hefei_folder / "ecg_train"
    renamed = tmp_path / "elsewhere.tsv"
    renamed.write_bytes((hefei_folder / "ecg_train.txt").read_bytes())
    assert len(load(hefei_folder, labels=renamed)) == 6


def test_without_class_list_classes_are_sorted(hefei_folder):
    (hefei_folder / "ecg_arrythmia.txt").unlink()
    assert load(hefei_folder).class_names == sorted(["窦性心律", "T波改变", "AF"])


def test_parallel_parse_equals_serial(tmp_path, make_dataset):
    data = make_dataset(n=70, length=20)
    folder = write_hefei(data, tmp_path / "many")
    paths = sorted((folder / "ecg_train").glob("*.txt"))
    parse = partial(parse_record, length=20)
    parallel = parse_all(parse, paths, (8, 20), workers=2)
    serial = parse_all(parse, paths, (8, 20), workers=1)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(parallel, data.signals)


def test_error_in_a_worker_reaches_the_caller(tmp_path, make_dataset):
    folder = write_hefei(make_dataset(n=70, length=20), tmp_path / "many")
    bad = folder / "ecg_train" / "100065.txt"
    lines = bad.read_text().splitlines()
    lines[3] = "1 2 3 4 5 6 7 oops"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"100065\.txt, line 4: 'oops' is not an integer"):
        load_dataset(folder, length=20, use_cache=False)


# ---- bad input: one test each, the message names the file and line or value ----------------------------------


def _edit_record(folder: Path, line: int, text: str | None) -> Path:
    """Replace (or delete, with None) 1-based `line` of record 100003."""
    path = folder / "ecg_train" / "100003.txt"
    lines = path.read_text().splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def test_row_with_seven_columns(hefei_folder):
    _edit_record(hefei_folder, 10, "1 2 3 4 5 6 7")
    with pytest.raises(DataError, match=r"ecg_train/100003\.txt, line 10: 7 columns, expected 8"):
        load(hefei_folder)


def test_non_numeric_cell(hefei_folder):
    _edit_record(hefei_folder, 7, "1 2 3 abc 5 6 7 8")
    with pytest.raises(DataError, match=r"100003\.txt, line 7: 'abc' is not an integer"):
        load(hefei_folder)


def test_truncated_record(hefei_folder):
    _edit_record(hefei_folder, LENGTH + 1, None)  # the last sample row
    with pytest.raises(DataError, match=rf"100003\.txt: {LENGTH - 1} sample rows, expected {LENGTH}"):
        load(hefei_folder)


def test_truncated_record_at_full_length(tmp_path, make_dataset):
    folder = write_hefei(make_dataset(n=1, length=5000), tmp_path / "full")
    path = folder / "ecg_train" / "100000.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"100000\.txt: 4999 sample rows, expected 5000"):
        load_dataset(folder, use_cache=False)


def test_unknown_lead(hefei_folder):
    with pytest.raises(DataError, match=r"100000\.txt: record 100000 has no lead 'V7' \(leads: I II V1"):
        load(hefei_folder, leads=("I", "V7"))


def test_twelve_leads_derive_the_limb_leads_from_i_and_ii(hefei_folder, small):
    dataset = load(hefei_folder, leads=ALL_12_LEADS)
    lead_i, lead_ii = small.signals[:, 0].astype(float), small.signals[:, 1].astype(float)
    expected = {"III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2, "aVL": lead_i - lead_ii / 2,
                "aVF": lead_ii - lead_i / 2, "V6": small.signals[:, 7]}
    for name, values in expected.items():
        np.testing.assert_array_equal(dataset.signals[:, ALL_12_LEADS.index(name)], np.rint(values))


def test_label_for_missing_signal_file(hefei_folder):
    (hefei_folder / "ecg_train" / "100004.txt").unlink()
    with pytest.raises(DataError, match=r"ecg_train\.txt: 1 of 6 listed records have no signal file.*100004\.txt"):
        load(hefei_folder)
    assert load(hefei_folder, present_only=True).record_ids == ["100000", "100001", "100002", "100003", "100005"]


def test_empty_label_file(hefei_folder):
    (hefei_folder / "ecg_train.txt").write_text("")
    with pytest.raises(DataError, match=r"ecg_train\.txt: the label file is empty"):
        load(hefei_folder, labels=hefei_folder / "ecg_train.txt")


def test_label_not_in_class_list(hefei_folder):
    path = hefei_folder / "ecg_train.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2] + "房室阻滞\t"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ecg_train\.txt, line 3: label\(s\) '房室阻滞' not in the class list"):
        load(hefei_folder)


def test_bad_sex_value(hefei_folder):
    path = hefei_folder / "ecg_train.txt"
    text = path.read_text(encoding="utf-8").replace("\tMALE\t", "\tX\t", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"ecg_train\.txt, line \d+: sex 'X' is not MALE, FEMALE or empty"):
        load_labels(hefei_folder)


def test_empty_class_is_kept_and_reported(tmp_path, make_dataset):
    data = make_dataset()
    data.class_names.append("unused")
    data.labels = np.concatenate([data.labels, np.zeros((6, 1), np.uint8)], axis=1)
    folder = write_hefei(data, tmp_path / "empty_class")
    with pytest.warns(UserWarning, match="1 class\\(es\\) have no record and are kept: unused"):
        dataset = load_dataset(folder, length=LENGTH, use_cache=False)
    assert dataset.class_names[-1] == "unused" and dataset.labels[:, -1].sum() == 0


def test_other_rate_resamples_the_500_hz_rows(hefei_folder, small):
    from scipy.signal import resample_poly

    dataset = load_dataset(hefei_folder, length=LENGTH // 2, fs=250, use_cache=False)
    assert dataset.signals.shape == (6, 8, LENGTH // 2) and dataset.fs == 250
    expected = np.rint(resample_poly(small.signals.astype(float), 1, 2, axis=-1))
    np.testing.assert_allclose(dataset.signals, expected, atol=1)


# ---- issue 12: rows of unequal length, encodings, garbage, unreadable records -----------------------------------


def test_rows_of_unequal_length_with_the_right_total_are_refused(hefei_folder):
    path = hefei_folder / "ecg_train" / "100003.txt"
    lines = path.read_text().splitlines()
    first, second = lines[5].split(), lines[6].split()
    lines[5], lines[6] = " ".join(first + second[:1]), " ".join(second[1:])  # 9 and 7 values: 16 in all
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"1 of 6 records cannot be read \(first: \S+ecg_train/100003\.txt, line 6: "
                                        r"9 columns, expected 8\); pass skip_bad_records=True"):
        load(hefei_folder)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_label_file_and_class_list_in_the_encodings_the_data_ships_in(hefei_folder, small, encoding):
    for name in ("ecg_train.txt", "ecg_arrythmia.txt"):
        path = hefei_folder / name
        path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
    dataset = load(hefei_folder)
    assert dataset.class_names == ["窦性心律", "T波改变", "AF"]
    np.testing.assert_array_equal(dataset.labels, small.labels)


def test_undecodable_label_file_is_one_line_naming_it_and_the_encodings(hefei_folder):
    path = hefei_folder / "ecg_train.txt"
    path.write_bytes(path.read_bytes() + b"100099.txt\t30\tMALE\t\xff\xff\xff\t\n")
    with pytest.raises(DataError) as caught:
        load(hefei_folder)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not text in utf-8-sig / gb18030 (byte ")
    assert message.endswith("save it as UTF-8")


def test_binary_garbage_as_a_record_is_quoted_in_at_most_80_characters(hefei_folder):
    garbage = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path = hefei_folder / "ecg_train" / "100003.txt"
    path.write_bytes(b"I II V1 V2 V3 V4 V5 V6\n" + garbage.replace(b"\n", b"x"))
    with pytest.raises(DataError) as caught:
        load(hefei_folder)
    message = str(caught.value)
    assert "\n" not in message and f"(first: {path}, line 2: not text (byte " in message
    quoted = re.split(r" at column \d+: ", message, maxsplit=1)[1].split(")); pass", 1)[0]
    assert len(quoted) <= 83 and quoted.endswith("...")


def test_binary_garbage_header_line_is_cut_to_80_characters(hefei_folder):
    path = hefei_folder / "ecg_train" / "100003.txt"
    path.write_bytes(b"Z" * 5000 + b"\n1 2 3\n")
    with pytest.raises(DataError, match=r"100003\.txt: record 100003 has no lead 'I' \(leads: Z{77}\.\.\.\)\)"):
        load(hefei_folder)


def test_unreadable_records_are_counted_or_skipped_with_reasons(hefei_folder, tmp_path):
    _edit_record(hefei_folder, 4, "1 2 3 4 5 6 7 oops")
    (hefei_folder / "ecg_train" / "100005.txt").write_text("I II V1 V2 V3 V4 V5 V6\n1 2 3\n")
    with pytest.raises(DataError) as caught:
        load(hefei_folder)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{hefei_folder / 'ecg_train'}: 2 of 6 records cannot be read (first: ")
    assert "100003.txt, line 4: 'oops' is not an integer; " in message
    assert "100005.txt, line 2: 3 columns, expected 8)" in message
    with pytest.warns(UserWarning, match=r"skipped 2 record\(s\)"):
        dataset = load_dataset(hefei_folder, length=LENGTH, cache_dir=tmp_path / "cache", skip_bad_records=True)
    assert dataset.record_ids == ["100000", "100001", "100002", "100004"]
    assert list(dataset.skipped) == ["100003", "100005"] and "'oops'" in dataset.skipped["100003"]
    with pytest.warns(UserWarning, match=r"skipped 2 record\(s\)"):
        cached = load_dataset(hefei_folder, length=LENGTH, cache_dir=tmp_path / "cache", skip_bad_records=True)
    assert cached.skipped == dataset.skipped


def test_skip_bad_records_also_lists_missing_signal_files(hefei_folder):
    (hefei_folder / "ecg_train" / "100001.txt").unlink()
    with pytest.warns(UserWarning, match=r"skipped 1 record"):
        dataset = load(hefei_folder, skip_bad_records=True)
    assert len(dataset) == 5 and dataset.skipped["100001"].endswith(
        f"100001.txt: no such file (listed in {hefei_folder / 'ecg_train.txt'})")


def test_row_check_finds_the_line_counting_values_per_line_finds():
    """The strided fast path against a plain per-line count, on random bodies with ragged, empty, CRLF lines."""
    from ecg.data.hefei import _first_ragged_row

    rng = np.random.default_rng(0)
    for _ in range(2000):
        cols = int(rng.integers(1, 5))
        lines = [" " * int(rng.integers(0, 3)) + " ".join(map(str, rng.integers(-99, 99, rng.choice(
            [cols, cols, cols, max(cols - 1, 0), cols + 1, 0])))) for _ in range(int(rng.integers(1, 7)))]
        newline = "\r\n" if rng.random() < 0.3 else "\n"
        body = (newline.join(lines) + (newline if rng.random() < 0.7 else "")).encode()
        pieces = body.split(b"\n")
        counts = [len(line.split()) for line in (pieces[:-1] if pieces[-1] == b"" else pieces)]
        expected = next((i for i, count in enumerate(counts) if count != cols), None)
        assert _first_ragged_row(body, cols) == expected, body
