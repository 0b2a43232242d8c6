from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ecg.inspect import main, summarize

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"n_records", "classes", "missing_age", "missing_sex", "split", "split_class_counts", "signals_present"}


def test_json_on_hefei_round2(hefei_dir, capsys):
    assert main([str(hefei_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert KEYS <= set(report)
    assert report["n_records"] == 20036 and report["signals_present"] == 10
    assert report["missing_age"] == 1590 and report["missing_sex"] == 1503
    assert [c["index"] for c in report["classes"]] == list(range(34))
    assert report["classes"][20] == {"index": 20, "name": "窦性心律", "count": 9501}
    assert sum(report["split"].values()) == 20036
    per_split = np.array([report["split_class_counts"][s] for s in ("train", "val", "test")])
    assert per_split.sum(axis=0).tolist() == [c["count"] for c in report["classes"]]
    assert report["labels_per_record"] == {"1": 12148, "2": 6255, "3": 1266, "4": 301, "5": 61, "6": 5}


def test_text_report_as_a_module(cinc_dir, user_env, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ecg.inspect", str(cinc_dir)], cwd=tmp_path, capture_output=True,
                            text=True, env=user_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "records: 50  (signal files present: 50)" in result.stdout
    assert "426783006" in result.stdout and "missing age: 0  missing sex: 0" in result.stdout


def test_labels_only_folder_without_signals(tmp_path):
    (tmp_path / "x_train.txt").write_text("1.txt\t30\tMALE\tA\t\n2.txt\t\tFEMALE\tB\tA\t\n3.txt\t40\t\tA\t\n")
    report = summarize(str(tmp_path))
    assert report["n_records"] == 3 and report["signals_present"] == 0
    assert report["classes"] == [{"index": 0, "name": "A", "count": 3}, {"index": 1, "name": "B", "count": 1}]
    assert report["missing_age"] == 1 and report["missing_sex"] == 1


def test_bad_path_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m ecg.inspect: error: ") and "nowhere: no such file or folder" in err
    assert err.count("\n") == 1


def test_wfdb_headers_with_labels_csv_before_the_signals_arrive(cinc_dir, tmp_path, capsys):
    import shutil

    for name in ("E07500", "E07501", "HR06000"):
        shutil.copy(cinc_dir / f"{name}.hea", tmp_path)  # headers only: the .mat files are "still downloading"
    csv = tmp_path / "labels.csv"
    csv.write_text("record,labels,age,sex\nE07500,AF;PAC,70,male\nE07501,NORM,,\nHR06000,AF,55,female\n")
    assert main([str(tmp_path), "--labels", str(csv), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_records"] == 3 and report["signals_present"] == 0
    assert report["classes"] == [{"index": 0, "name": "AF", "count": 2}, {"index": 1, "name": "PAC", "count": 1},
                                 {"index": 2, "name": "NORM", "count": 1}]
    assert report["missing_age"] == 1 and report["missing_sex"] == 1


# ---- issues 12 and 19: what loads but should be seen, and unreadable records ---------------------------------


def _challenge_record(folder: Path, name: str, n: int, comments: tuple[str, ...], fs: int = 500,
                      record_name: str | None = None) -> None:
    """A CinC-style record: MATLAB v4 `val` [12, n] + header (tests/ecg/data/test_wfdb_headers.py has every form)."""
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{name}.mat", {"val": np.zeros((12, n), np.int16)}, format="4")
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    lines = [f"{record_name or name} 12 {fs} {n}", *(f"{name}.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in leads)]
    (folder / f"{name}.hea").write_text("\n".join([*lines, *comments]) + "\n")


def _wfdb_folder(folder: Path) -> Path:
    _challenge_record(folder, "A1", 5000, ("# Age: 123", "# Sex: Male", "# Dx: 426783006"))
    _challenge_record(folder, "A2", 12_000, ("# Age: 40", "# Sex: Female", "# Dx: Unknown"), record_name="A2.mat")
    _challenge_record(folder, "A3", 2570, ("# Age: 121", "# Dx: 164889003"), fs=257)
    return folder


def test_lengths_unlabelled_records_and_odd_ages_are_reported(tmp_path, capsys):
    folder = _wfdb_folder(tmp_path / "db")
    assert main([str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["records_without_label"] == {"count": 1, "first": ["A2"]}
    # Ages the readers accept (ecg.values.AGE_YEARS) but no one has lived to: 121, 123 (Hefei's file has 124)
    assert report["age_out_of_range"] == {"count": 2, "first": [{"record": "A1", "age": 123.0},
                                                                {"record": "A3", "age": 121.0}]}
    assert report["lengths"] == {"target_seconds": 10.0, "known": 3, "unknown": 0,
                                 "seconds": {"min": 10.0, "median": 10.0, "max": 24.0},
                                 "longer": 1, "shorter": 0, "rates": {"500": 2, "257": 1},
                                 "short_signal_files": {"count": 0, "first": []}}
    assert main([str(folder)]) == 0
    text = capsys.readouterr().out
    assert "records with no label: 1 (first: A2)" in text
    assert "ages outside 0-120: 2 (first: A1 (123), A3 (121))" in text
    assert ("lengths (from the headers): median 10 s, min 10 s, max 24 s; 1 longer than 10 s (their first 10 s are "
            "read), 0 shorter (zero-padded at the end); rates: 500 Hz: 2, 257 Hz: 1") in text


def test_labels_csv_rows_naming_no_record_are_counted(tmp_path, capsys):
    folder = _wfdb_folder(tmp_path / "db")
    csv = tmp_path / "labels.csv"
    csv.write_text("record,labels\nA1,AF\nA2,NORM\nA3,AF\nZ9,AF\nZ8,NORM\n")
    assert main([str(folder), "--labels", str(csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_label_rows"] == {"count": 2, "first": ["Z9", "Z8"]}
    assert main([str(folder), "--labels", str(csv)]) == 0
    assert "labels-CSV rows naming no record: 2 (first: Z9, Z8)" in capsys.readouterr().out


def test_unreadable_headers_exit_2_in_one_line_or_are_listed_with_skip_bad_records(tmp_path, user_env):
    folder = _wfdb_folder(tmp_path / "db")
    (folder / "BAD.hea").write_bytes(bytes(range(256)) * 4)

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ecg.inspect", str(folder), *extra], cwd=tmp_path,
                              capture_output=True, text=True, env=user_env, timeout=120)

    refused = run()
    assert refused.returncode == 2 and refused.stdout == "" and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(f"python -m ecg.inspect: error: {folder}: 1 of 4 records cannot be read (first: "
                                     f"{folder / 'BAD.hea'}: "
                                     "not a WFDB header")
    assert refused.stderr.rstrip().endswith("pass skip_bad_records=True (--skip-bad-records) to load the rest")
    skipped = run("--skip-bad-records", "--json")
    assert skipped.returncode == 0, skipped.stderr
    report = json.loads(skipped.stdout)
    assert report["n_records"] == 3 and [s["record"] for s in report["skipped"]] == ["BAD"]
    assert "not a WFDB header" in report["skipped"][0]["reason"]
    text = run("--skip-bad-records")
    assert "skipped as unreadable: 1\n  BAD: " in text.stdout


def test_signal_files_shorter_than_their_header_are_reported_without_reading_them(tmp_path, capsys):
    folder = _wfdb_folder(tmp_path / "db")
    mat = folder / "A2.mat"
    mat.write_bytes(mat.read_bytes()[:24 + 12 * 2 * 6000])  # half of A2's 12,000 samples
    (folder / "A3.mat").unlink()  # not downloaded yet: counted by signals_present, not as short
    assert main([str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["signals_present"] == 2
    assert report["lengths"]["short_signal_files"] == {
        "count": 1, "first": [f"{folder / 'A2.hea'}: header says 12000 samples x 12 signals in A2.mat (288024 bytes) "
                              "but the file has 144024 bytes"]}
    assert main([str(folder)]) == 0
    assert "signal files shorter than their header says (will not load): 1 (first: " in capsys.readouterr().out


# ---- issue 24: values refused as the readers refuse them, and nothing raw on the terminal ------------------------


def test_an_absurd_age_is_one_line_naming_the_header_or_a_skipped_record(tmp_path, capsys):
    folder = _wfdb_folder(tmp_path / "db")
    _challenge_record(folder, "A4", 5000, ("# Age: inf", "# Sex: Male", "# Dx: 426783006"))
    assert main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"python -m ecg.inspect: error: {folder}: 1 of 4 records cannot "
                                                   f"be read (first: {folder / 'A4.hea'}: age 'inf' is not a number "
                                                   "of years from 0 to 125")
    assert main([str(folder), "--skip-bad-records", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_records"] == 3 and [s["record"] for s in report["skipped"]] == ["A4"]


def test_control_characters_in_record_names_are_printed_escaped(tmp_path, capsys):
    (tmp_path / "x_train.txt").write_text("1.txt\t30\tMALE\tA\t\n2.txt\t30\tMALE\tA\t\n3.txt\t30\tMALE\tA\t\n"
                                          "\x1b]0;owned\x07.txt\t40\tFEMALE\t\n")
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "records with no label: 1 (first: \\x1b]0;owned\\x07)" in out and "\x1b" not in out and "\x07" not in out


def test_a_fifo_given_as_the_labels_is_refused_not_waited_on(tmp_path, capsys):
    (tmp_path / "x_train.txt").write_text("1.txt\t30\tMALE\tA\t\n")
    os.mkfifo(tmp_path / "labels.txt")
    assert main([str(tmp_path), "--labels", str(tmp_path / "labels.txt")]) == 2
    assert capsys.readouterr().err == (f"python -m ecg.inspect: error: {tmp_path / 'labels.txt'}: a FIFO, not a file "
                                       "that can be read\n")


def test_a_seed_beyond_32_bits_is_one_line(tmp_path, capsys):
    (tmp_path / "x_train.txt").write_text("1.txt\t30\tMALE\tA\t\n2.txt\t40\tFEMALE\tB\t\n3.txt\t50\t\tA\t\n")
    assert main([str(tmp_path), "--seed", str(2**32)]) == 2
    assert "split seed must be an integer from 0 to 2**32 - 1 (4294967295), got '4294967296'" in capsys.readouterr().err
