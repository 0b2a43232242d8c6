"""Bad input through launch.py (issue 12, item 1): every refusal is one line on stderr naming the file or value,
exit code 2, and the results folder is left as it was (no run folder, no Ray started).

Each case builds its input in a tmp folder and runs `launch.main` in this process (a subprocess per case would
pay ~7 s of imports each); the data is read before the run folder is created, so nothing needs removing.
docs/reliability.md, "Bad input", lists these cases with what happens.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]




def _hefei(tmp: Path) -> Path:
    from ecg.data.hefei import write_hefei
    from ecg.synthetic import generate

    return write_hefei(generate(6, seed=0), tmp / "hefei")


def empty_folder(tmp: Path) -> tuple[list[str], str]:
    (tmp / "empty").mkdir()
    return ["--data", str(tmp / "empty")], "empty: not a recognised dataset"


def garbage_npz(tmp: Path) -> tuple[list[str], str]:
    (tmp / "garbage.npz").write_bytes(b"\x00\x01 not an npz " * 20)
    return ["--data", str(tmp / "garbage.npz")], "garbage.npz: not a readable .npz"


def npz_without_labels(tmp: Path) -> tuple[list[str], str]:
    np.savez(tmp / "signals_only.npz", signals=np.zeros((3, 8, 100), np.int16))
    return ["--data", str(tmp / "signals_only.npz")], "signals_only.npz: missing array(s) labels"


def label_file_naming_a_missing_record(tmp: Path) -> tuple[list[str], str]:
    folder = _hefei(tmp)
    label_file = next(p for p in folder.iterdir() if p.is_file() and p.name.endswith("_train.txt"))
    text = label_file.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    label_file.write_text(text + "999999.txt" + first[first.index("\t"):] + "\n", encoding="utf-8")
    return ["--data", str(folder)], f"{label_file.name}: 1 of 7 listed records have no signal file"


def text_in_a_record(tmp: Path) -> tuple[list[str], str]:
    folder = _hefei(tmp)
    record = sorted(next(p for p in folder.iterdir() if p.is_dir()).iterdir())[0]
    lines = record.read_text().splitlines()
    lines[5] = "12 abc 3 4 5 6 7 8"
    record.write_text("\n".join(lines) + "\n")
    return ["--data", str(folder)], f"{record.name}, line 6: 'abc' is not an integer"


def wfdb_header_that_is_not_one(tmp: Path) -> tuple[list[str], str]:
    (tmp / "wfdb").mkdir()
    (tmp / "wfdb" / "r1.hea").write_text("r1 12 500 5000\nr1.dat 16 1000 16 0 0 0 0 I\n")
    return ["--data", str(tmp / "wfdb")], "r1.hea: the record line says 12 signals, but 1 signal line(s) follow it"


def missing_data(tmp: Path) -> tuple[list[str], str]:
    return ["--data", str(tmp / "nowhere")], "nowhere: no such file or folder"


def missing_labels(tmp: Path) -> tuple[list[str], str]:
    return ["--data", str(_hefei(tmp)), "--labels", str(tmp / "classes.txt")], "classes.txt: no such file"


def option(*argv: str, message: str) -> Callable[[Path], tuple[list[str], str]]:
    return lambda tmp: (list(argv), message)


CASES = {
    "empty folder": empty_folder,
    "garbage .npz": garbage_npz,
    ".npz without labels": npz_without_labels,
    "label file names a missing record": label_file_naming_a_missing_record,
    "text in a Hefei record": text_in_a_record,
    "WFDB header that is not one": wfdb_header_that_is_not_one,
    "missing --data": missing_data,
    "missing --labels": missing_labels,
    "--cpus-per-trial beyond the machine": option("--cpus-per-trial", "4096",
                                                  message="--cpus-per-trial 4096 is more than this machine has"),
    "--memory-per-trial beyond the machine": option("--memory-per-trial", "1e6",
                                                    message="--memory-per-trial 1e+06 is more than this machine has"),
    "--memory-per-trial 0": option("--memory-per-trial", "0", message="--memory-per-trial must be > 0 (GiB), got 0"),
    "--dashboard-host not an address": option("--dashboard-host", "my laptop",
                                              message="--dashboard-host 'my laptop' is not an IP address"),
    "--trust-run-folder without --resume": option("--trust-run-folder",
                                                  message="--trust-run-folder only applies with --resume"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_folder(case, tmp_path, capsys, monkeypatch, launch) -> None:
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    argv, message = CASES[case](tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    (results / "README").write_text("kept")
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    capsys.readouterr()
    code = launch.main([*argv, "--results-dir", str(results), "--n-records", "20"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("launch.py: error: "), err
    assert message in err, err
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before  # no run folder, nothing else
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


@pytest.mark.parametrize("case", ["garbage .npz", "text in a Hefei record", "empty folder"])
def test_ecg_train_refuses_bad_data_in_one_line_before_writing(case, tmp_path, capsys, monkeypatch) -> None:
    from ecg.train.__main__ import main as train_main

    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    argv, message = CASES[case](tmp_path)
    out = tmp_path / "train-out"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train_main([*argv, "--family", "ecgnet", "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and err.startswith("python -m ecg.train: error: ") and message in err, err
    assert not out.exists()


def test_ecg_train_refuses_an_unknown_model_option_in_one_line_before_writing(tmp_path, capsys, monkeypatch) -> None:
    from ecg.train.__main__ import main as train_main

    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "train-out"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train_main(["--family", "ecgnet", "--model", "no_such_option=3", "--n-records", "40", "--fs", "100", "--length", "1000",
                    "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "no_such_option" in err, err
    assert not out.exists()
