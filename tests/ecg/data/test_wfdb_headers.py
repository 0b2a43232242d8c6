"""WFDB headers as the PhysioNet/CinC 2020-2021 releases distribute them, written here record by record.

Each form is written as the Challenge writes its records (a MATLAB v4 `.mat` holding the int16 array `val`
[leads, samples] and a header whose signal lines say `16+24`: format 16 after the 24-byte v4 preamble), so
the tests do not depend on the 50 shared records alone.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import wfdb

from ecg.data import ALL_12_LEADS, UNITS_PER_MV, DataError, load_dataset, load_labels
from ecg.data.physionet import read_header_text

GAIN = 1000.0  # ADC units per mV, as in the CinC headers


def digital_signal(n_samples: int, seed: int = 0) -> np.ndarray:
    """int16 `[12, n_samples]` ADC values (+-2 mV at GAIN)."""
    return np.random.default_rng(seed).integers(-2000, 2000, (12, n_samples)).astype(np.int16)


def challenge_record(folder: Path, name: str, digital: np.ndarray, *, record_line: str = "{name} 12 {fs} {n}",
                     fs: int = 500, comments: tuple[str, ...] = ("# Age: 63", "# Sex: Female", "# Dx: 164889003"),
                     newline: str = "\n", sep: str = " ") -> Path:
    """`NAME.mat` (v4, 'val') + `NAME.hea` with the given record line, line ends and comments."""
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{name}.mat", {"val": digital}, format="4")
    lines = [record_line.format(name=name, fs=fs, n=digital.shape[1])]
    lines += [sep.join([f"{name}.mat", "16+24", f"{GAIN:g}/mV", "16", "0", str(int(row[0])), "0", "0", lead])
              for row, lead in zip(digital, ALL_12_LEADS)]
    header = folder / f"{name}.hea"
    header.write_bytes((newline.join([*lines, *comments]) + newline).encode())
    return header


def expected_units(digital: np.ndarray) -> np.ndarray:
    return np.rint(digital.astype(float) / GAIN * UNITS_PER_MV).astype(np.int16)


FORMS = {
    "plain": dict(),
    "record line names the .mat": dict(record_line="{name}.mat 12 {fs} {n}"),
    "CRLF line ends": dict(newline="\r\n"),
    "record line with .mat and CRLF": dict(record_line="{name}.mat 12 {fs} {n}", newline="\r\n"),
    "date and time as in CinC 2020": dict(record_line="{name} 12 {fs} {n} 05-Feb-2020 11:39:16"),
    "tab separated": dict(record_line="{name}\t12\t{fs}\t{n}", sep="\t"),
    "trailing blank lines and spaces": dict(record_line="{name} 12 {fs} {n}  ", newline=" \n\n"),
    "extra comment fields": dict(comments=("#Age: 63", "#Sex: Female", "#Dx: 164889003", "#Rx: Unknown",
                                           "#Hx: Unknown", "#Sx: Unknown", "# recorded at site 3, no colon here")),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_distributed_header_form_loads_the_same_signal(tmp_path, form):
    digital = digital_signal(5000)
    challenge_record(tmp_path, "A0001", digital, **FORMS[form])
    dataset = load_dataset(tmp_path, leads=ALL_12_LEADS, use_cache=False)
    assert dataset.record_ids == ["A0001"] and dataset.class_names == ["164889003"]
    assert dataset.age[0] == 63 and dataset.sex[0] == 0
    np.testing.assert_array_equal(dataset.signals[0], expected_units(digital))


def test_wfdb_itself_refuses_only_the_record_line_that_names_the_signal_file(tmp_path):
    """What wfdb 4.x reads unaided; the one form it refuses is read through a normalised copy (see physionet.py)."""
    digital = digital_signal(100)
    refused = []
    for index, (form, kwargs) in enumerate(FORMS.items()):
        header = challenge_record(tmp_path, f"r{index}", digital, **kwargs)
        try:
            wfdb.rdrecord(str(header.with_suffix("")))
        except Exception as error:  # wfdb.io.header.HeaderSyntaxError
            refused.append((form, str(error)))
            assert read_header_text(header).wfdb_refuses
        else:
            assert not read_header_text(header).wfdb_refuses
    assert [form for form, _ in refused] == ["record line names the .mat", "record line with .mat and CRLF"]
    assert all(message == "invalid syntax in record line" for _, message in refused)


@pytest.mark.parametrize("dx", [None, "# Dx: Unknown", "# Dx:", "#Dx: unknown"])
def test_missing_or_unknown_dx_is_a_record_with_no_label(tmp_path, dx):
    challenge_record(tmp_path, "A0001", digital_signal(100), comments=("# Age: 50", "# Sex: Male", "# Dx: 426783006"))
    challenge_record(tmp_path, "A0002", digital_signal(100), comments=("# Age: NaN", "# Sex: Unknown",
                                                                       *([dx] if dx else [])))
    dataset, present = load_labels(tmp_path)
    assert dataset.class_names == ["426783006"] and present == 2
    np.testing.assert_array_equal(dataset.labels, [[1], [0]])
    assert np.isnan(dataset.age[1]) and np.isnan(dataset.sex[1])
    assert len(load_dataset(tmp_path, length=100, use_cache=False)) == 2


# ---- records longer than 10 s --------------------------------------------------------------------------------


def test_a_longer_record_keeps_its_first_ten_seconds(tmp_path):
    digital = digital_signal(12_000)  # 24 s at 500 Hz, as some CPSC 2020 records
    challenge_record(tmp_path, "Q0001", digital, record_line="{name}.mat 12 {fs} {n}")
    dataset = load_dataset(tmp_path, leads=ALL_12_LEADS, use_cache=False)
    assert dataset.signals.shape == (1, 12, 5000)
    np.testing.assert_array_equal(dataset.signals[0], expected_units(digital[:, :5000]))


def test_a_long_record_at_another_rate_is_cut_at_ten_seconds_then_resampled(tmp_path, monkeypatch):
    """INCART-like: 257 Hz, 30 min. Only the first ceil(10 s x 257) samples are read and resampled."""
    digital = digital_signal(257 * 1800)
    challenge_record(tmp_path, "I0001", digital, fs=257)
    calls = []
    original = wfdb.rdrecord
    monkeypatch.setattr(wfdb, "rdrecord", lambda *a, **k: calls.append(k.get("sampto")) or original(*a, **k))
    dataset = load_dataset(tmp_path, leads=ALL_12_LEADS, use_cache=False)
    assert calls == [2570] and dataset.signals.shape == (1, 12, 5000)
    from scipy.signal import resample_poly

    expected = resample_poly(digital[:, :2570] / GAIN, 500, 257, axis=-1)[:, :5000]
    np.testing.assert_array_equal(dataset.signals[0], np.rint(expected * UNITS_PER_MV).astype(np.int16))


def test_a_long_record_whose_signal_file_is_cut_short_is_still_refused(tmp_path):
    header = challenge_record(tmp_path, "L0001", digital_signal(20_000))
    mat = header.with_suffix(".mat")
    mat.write_bytes(mat.read_bytes()[:24 + 12 * 2 * 10_000])  # half the samples; the first 10 s are intact
    with pytest.raises(DataError, match=r"L0001\.hea: header says 20000 samples x 12 signals in L0001\.mat "
                                        r"\(480024 bytes\) but the file has 240024 bytes"):
        load_dataset(tmp_path, use_cache=False)


# ---- records that cannot be read ------------------------------------------------------------------------------


def _folder_with_bad_records(folder: Path) -> Path:
    for i in range(4):
        challenge_record(folder, f"G{i}", digital_signal(100, seed=i))
    (folder / "B1.hea").write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (folder / "B1.mat").write_bytes(b"")
    truncated = challenge_record(folder, "B2", digital_signal(100))
    truncated.with_suffix(".mat").write_bytes(truncated.with_suffix(".mat").read_bytes()[:500])
    challenge_record(folder, "B3", digital_signal(100)).with_suffix(".mat").unlink()
    return folder


def test_unreadable_records_are_one_line_that_counts_them(tmp_path):
    folder = _folder_with_bad_records(tmp_path / "db")
    with pytest.raises(DataError) as caught:
        load_dataset(folder, length=100, use_cache=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{folder}: 3 of 7 records cannot be read (first: {folder / 'B1.hea'}: not a WFDB header")
    assert f"; {folder / 'B3.hea'}: signal file B3.mat is missing; {folder / 'B2.hea'}: header says 100" in message
    assert message.endswith("pass skip_bad_records=True (--skip-bad-records) to load the rest")


def test_binary_garbage_header_is_quoted_in_at_most_80_characters(tmp_path):
    folder = _folder_with_bad_records(tmp_path / "db")
    with pytest.raises(DataError) as caught:
        load_labels(folder)
    quoted = str(caught.value).split("line 1: ", 1)[1].split(")", 1)[0]
    assert len(quoted) <= 83 and quoted.endswith("...")


def test_skip_bad_records_loads_the_rest_and_says_why_even_from_the_cache(tmp_path):
    folder = _folder_with_bad_records(tmp_path / "db")
    for attempt in ("parsed", "cached"):
        with pytest.warns(UserWarning, match=r"skipped 3 record\(s\) that cannot be read"):
            dataset = load_dataset(folder, length=100, cache_dir=tmp_path / "cache", skip_bad_records=True)
        assert dataset.record_ids == ["G0", "G1", "G2", "G3"], attempt
        assert list(dataset.skipped) == ["B1", "B3", "B2"]
        assert "not a WFDB header" in dataset.skipped["B1"]
        assert dataset.skipped["B3"] == f"{folder / 'B3.hea'}: signal file B3.mat is missing"
        assert "B2.mat (2424 bytes) but the file has 500 bytes" in dataset.skipped["B2"]
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_a_folder_without_bad_records_warns_nothing(tmp_path):
    challenge_record(tmp_path, "G0", digital_signal(100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = load_dataset(tmp_path, length=100, use_cache=False, skip_bad_records=True)
    assert dataset.skipped == {} and len(dataset) == 1


def test_the_fifty_shared_cinc_records_need_no_skipping(cinc_dir):
    dataset = load_dataset(cinc_dir, use_cache=False, skip_bad_records=True)
    assert len(dataset) == 50 and dataset.skipped == {}


def test_a_data_spec_carries_skip_bad_records_through_load_and_run_json(tmp_path, monkeypatch):
    from ecg.data.source import DataSpec, load

    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))

    folder = _folder_with_bad_records(tmp_path / "db")
    spec = DataSpec(data=folder, length=100, skip_bad_records=True)
    assert DataSpec.from_dict(spec.to_dict()) == spec and spec.to_dict()["skip_bad_records"] is True
    with pytest.warns(UserWarning, match=r"skipped 3 record"):
        dataset = load(spec)
    assert len(dataset) == 4 and set(dataset.skipped) == {"B1", "B2", "B3"}
    with pytest.raises(DataError, match=r"3 of 7 records cannot be read"):
        load(DataSpec(data=folder, length=100))
