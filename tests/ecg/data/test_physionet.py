from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecg.data import ALL_12_LEADS, HEFEI_LEADS, UNITS_PER_MV, DataError, load_dataset, load_labels


def load(path: Path, **kwargs):
    return load_dataset(path, use_cache=False, **kwargs)


def write_record(folder: Path, name: str, millivolts: np.ndarray, *, fs: int = 500,
                 leads: tuple[str, ...] = HEFEI_LEADS, comments: list[str] | None = None,
                 gain: float = 1000.0) -> Path:
    """A WFDB record (`.hea` + `.dat`, format 16, `gain` units per mV) of `millivolts [T, leads]`."""
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads), p_signal=millivolts,
                fmt=["16"] * len(leads), adc_gain=[gain] * len(leads), baseline=[0] * len(leads),
                comments=comments if comments is not None else ["Age: 50", "Sex: Female", "Dx: 164889003"],
                write_dir=str(folder))
    return folder / f"{name}.hea"


# ---- the real CinC 2021 sample -------------------------------------------------------------------------------


def test_cinc_eight_leads_snomed_classes_ages_sexes(cinc_dir):
    dataset = load(cinc_dir)
    assert dataset.signals.shape == (50, 8, 5000) and dataset.signals.dtype == np.int16
    assert dataset.lead_names == list(HEFEI_LEADS)
    codes = set()
    for header in cinc_dir.glob("*.hea"):
        dx = [line for line in header.read_text().splitlines() if line.startswith("# Dx:")][0]
        codes.update(code.strip() for code in dx.split(":", 1)[1].split(","))
    assert set(dataset.class_names) == codes and all(name.isdigit() for name in dataset.class_names)
    first = dataset.record_ids.index("E07500")  # '# Age: 78', '# Sex: Male', '# Dx: 67741000119109,426177001'
    assert dataset.age[first] == 78 and dataset.sex[first] == 1
    assert {dataset.class_names[c] for c in np.flatnonzero(dataset.labels[first])} == {"67741000119109", "426177001"}
    assert not np.isnan(dataset.age).any() and set(np.unique(dataset.sex)) <= {0.0, 1.0}
    assert (dataset.sex == 0).sum() == 27  # 27 '# Sex: Female' headers


def test_cinc_twelve_leads_on_request_and_values_on_hefei_scale(cinc_dir):
    dataset = load(cinc_dir, leads=ALL_12_LEADS)
    assert dataset.signals.shape == (50, 12, 5000)
    record = wfdb.rdrecord(str(cinc_dir / "E07500"))
    expected = np.clip(np.rint(record.p_signal.T * UNITS_PER_MV), -32768, 32767)
    np.testing.assert_array_equal(dataset.signals[dataset.record_ids.index("E07500")], expected)


def test_cinc_labels_only_never_needs_signals(cinc_dir, tmp_path):
    for header in cinc_dir.glob("E0750*.hea"):
        shutil.copy(header, tmp_path)
    shutil.copy(cinc_dir / "E07500.mat", tmp_path)
    dataset, present = load_labels(tmp_path)
    assert len(dataset) == 10 and present == 1 and dataset.signals is None


# ---- leads, scale, rate and length ---------------------------------------------------------------------------


def test_leads_are_matched_case_insensitively_in_requested_order(tmp_path):
    signal = np.tile(np.arange(8, dtype=float)[None, :] / 10, (100, 1))
    write_record(tmp_path, "r1", signal, leads=("i", "ii", "v1", "v2", "v3", "v4", "v5", "v6"))
    dataset = load(tmp_path, leads=("V6", "I"), length=100)
    np.testing.assert_array_equal(dataset.signals[0, :, 0], np.rint([0.7 * UNITS_PER_MV, 0.0]))


def test_missing_lead_names_record_and_lead(tmp_path):
    write_record(tmp_path, "limb", np.zeros((100, 2)), leads=("I", "II"))
    with pytest.raises(DataError, match=r"limb\.hea: record limb has no lead 'V1'"):
        load(tmp_path, length=100)


def test_one_millivolt_is_205_units_and_clipping(tmp_path):
    signal = np.full((100, 8), 1.0)
    signal[:, 1] = 200.0  # beyond the int16 range of the Hefei scale (about 160 mV)
    write_record(tmp_path, "r1", signal, gain=100.0)
    dataset = load(tmp_path, length=100)
    assert dataset.signals[0, 0, 0] == 205 and dataset.signals[0, 1, 0] == 32767


def test_other_rate_is_resampled(tmp_path):
    t = np.arange(2500) / 250
    sine = np.sin(2 * np.pi * 5 * t)[:, None] * np.ones((1, 8))
    write_record(tmp_path, "slow", sine, fs=250)
    dataset = load(tmp_path)
    assert dataset.fs == 500 and dataset.signals.shape == (1, 8, 5000)
    t500 = np.arange(5000) / 500
    expected = np.sin(2 * np.pi * 5 * t500) * UNITS_PER_MV
    inner = slice(200, 4800)  # away from the filter's edge effects
    assert np.abs(dataset.signals[0, 0, inner] - expected[inner]).max() < 0.02 * UNITS_PER_MV


def test_longer_record_keeps_first_samples_shorter_is_zero_padded_at_end(tmp_path):
    ramp = (np.arange(150) / 100.0)[:, None] * np.ones((1, 8))
    write_record(tmp_path / "long", "long", ramp)
    write_record(tmp_path / "short", "short", ramp[:60])
    long = load(tmp_path / "long", length=100).signals[0, 0]
    short = load(tmp_path / "short", length=100).signals[0, 0]
    np.testing.assert_array_equal(long, np.rint(np.arange(100) / 100 * UNITS_PER_MV))
    np.testing.assert_array_equal(short[:60], np.rint(np.arange(60) / 100 * UNITS_PER_MV))
    assert (short[60:] == 0).all()


def test_recursive_search_gives_relative_ids(tmp_path):
    write_record(tmp_path / "g1", "a", np.zeros((100, 8)))
    write_record(tmp_path / "g2" / "deep", "b", np.zeros((100, 8)))
    assert load(tmp_path, length=100).record_ids == ["g1/a", "g2/deep/b"]


# ---- labels CSV ----------------------------------------------------------------------------------------------


def test_labels_csv_overrides_free_text_headers(tmp_path):
    data = tmp_path / "db"
    write_record(data, "r1", np.zeros((100, 8)), comments=["free text"])
    write_record(data, "r2", np.zeros((100, 8)), comments=["free text"])
    csv = tmp_path / "labels.csv"
    csv.write_text("record,labels,age,sex\nr1,AF;LBBB,61,M\nr2,NORM,,female\n")
    dataset = load(data, labels=csv, length=100)
    assert dataset.class_names == ["AF", "LBBB", "NORM"]
    np.testing.assert_array_equal(dataset.labels, [[1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(dataset.age, [61, np.nan])
    np.testing.assert_array_equal(dataset.sex, [1, 0])


def test_labels_csv_row_for_missing_record(tmp_path):
    write_record(tmp_path / "db", "r1", np.zeros((100, 8)))
    csv = tmp_path / "labels.csv"
    csv.write_text("record,labels\nr1,AF\nr9,NORM\n")
    with pytest.raises(DataError, match=r"labels\.csv: 1 record\(s\) listed have no WFDB header.*r9"):
        load(tmp_path / "db", labels=csv, length=100)
    assert load(tmp_path / "db", labels=csv, length=100, present_only=True).record_ids == ["r1"]


def test_labels_csv_bad_age_names_line(tmp_path):
    write_record(tmp_path / "db", "r1", np.zeros((100, 8)))
    csv = tmp_path / "labels.csv"
    csv.write_text("record,labels,age\nr1,AF,old\n")
    with pytest.raises(DataError, match=r"labels\.csv, line 2: age 'old' is not a number"):
        load_labels(tmp_path / "db", labels=csv)


# ---- bad input -----------------------------------------------------------------------------------------------


def test_signal_file_shorter_than_header_says(cinc_dir, tmp_path):
    for suffix in (".hea", ".mat"):
        shutil.copy(cinc_dir / f"E07500{suffix}", tmp_path)
    data = (tmp_path / "E07500.mat").read_bytes()
    (tmp_path / "E07500.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"E07500\.hea: header says 5000 samples x 12 signals in E07500\.mat "
                                        r"\(120024 bytes\) but the file has 60012 bytes"):
        load(tmp_path)


def test_missing_signal_file(tmp_path):
    header = write_record(tmp_path, "r1", np.zeros((100, 8)))
    write_record(tmp_path, "r2", np.zeros((100, 8)))
    header.with_suffix(".dat").unlink()
    with pytest.raises(DataError, match=r"1 of 2 records cannot be read \(first: \S+/r1\.hea: signal file r1\.dat "
                                        r"is missing\); pass skip_bad_records=True \(--skip-bad-records\) to load "
                                        r"the rest$"):
        load(tmp_path, length=100)
    assert load(tmp_path, length=100, present_only=True).record_ids == ["r2"]


def test_eight_lead_record_gives_twelve_with_derived_limb_leads(tmp_path):
    t = np.arange(100)
    signal = np.zeros((100, 8))
    signal[:, 0] = 0.001 * t  # I
    signal[:, 1] = 0.003 * t  # II
    write_record(tmp_path, "r1", signal)
    dataset = load(tmp_path, leads=ALL_12_LEADS, length=100)
    lead_iii = dataset.signals[0, ALL_12_LEADS.index("III")]
    np.testing.assert_array_equal(lead_iii, np.rint(0.002 * t * UNITS_PER_MV))


def test_dat_file_shorter_than_header_says(tmp_path):
    header = write_record(tmp_path, "r1", np.zeros((100, 8)))
    dat = header.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:-16 * 10])  # 10 of 100 samples x 8 signals x 2 bytes gone
    with pytest.raises(DataError, match=r"r1\.hea: header says 100 samples x 8 signals in r1\.dat \(1600 bytes\) "
                                        r"but the file has 1440 bytes"):
        load(tmp_path, length=100)
