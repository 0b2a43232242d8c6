from __future__ import annotations

import json
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


def test_text_report_as_a_module(cinc_dir):
    result = subprocess.run([sys.executable, "-m", "ecg.inspect", str(cinc_dir)], cwd=ROOT, capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
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
    assert err.startswith("error: ") and "nowhere: no such file or folder" in err and err.count("\n") == 1


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
