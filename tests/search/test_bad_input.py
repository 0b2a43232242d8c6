"""Bad input through launch.py, python -m ecg.train and python -m ecg.inspect (issues 12 and 24): every refusal is
one line on stderr naming the file, line or option and the value (quoted: at most 80 characters, control characters
escaped), exit code 2, and nothing is left behind (no run folder, no output folder, no cache entry, no Ray).

Each case builds its input in a tmp folder and runs the entry point's `main` in this process (a subprocess per case
would pay ~7 s of imports each); the data is read before the run folder is created, so nothing needs removing.
docs/reliability.md, "Bad input", lists these cases with what happens.
"""
from __future__ import annotations

import os
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


# ---- issue 24: data folders ----------------------------------------------------------------------------------


def _hefei_record(tmp: Path, name: str) -> tuple[Path, Path]:
    """A Hefei folder and its record `name`.txt (which the label file names)."""
    folder = _hefei(tmp)
    return folder, next(p for p in folder.iterdir() if p.is_dir()) / f"{name}.txt"


def _replaced_by(replace: Callable[[Path], None], message: str) -> Callable[[Path], tuple[list[str], str]]:
    """A Hefei folder whose first record (named by its label file) is replaced by what `replace` makes."""
    def build(tmp: Path) -> tuple[list[str], str]:
        folder, record = _hefei_record(tmp, "syn0-000000")
        record.unlink()
        replace(record)
        return ["--data", str(folder)], message.format(record=record)
    return build


def _wfdb(tmp: Path, n: int = 4, record_line: str = "{name} 12 500 5000", comments: tuple[str, ...] = ()) -> Path:
    """`n` CinC-style records (MATLAB v4 `val` + header, two classes); record A0 gets `record_line`, `comments`."""
    import scipy.io

    folder = tmp / "wfdb"
    folder.mkdir()
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    for i in range(n):
        name = f"A{i}"
        scipy.io.savemat(folder / f"{name}.mat", {"val": np.zeros((12, 5000), np.int16)}, format="4")
        line = (record_line if i == 0 else "{name} 12 500 5000").format(name=name)
        notes = comments if i == 0 and comments else ("# Age: 60", "# Sex: Male", f"# Dx: {164889003 + i % 2}")
        signals = [f"{name}.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in leads]
        (folder / f"{name}.hea").write_text("\n".join([line, *signals, *notes]) + "\n")
    return folder


def wfdb_signal_count_disagrees(tmp: Path) -> tuple[list[str], str]:
    folder = _wfdb(tmp, record_line="{name} 11 500 5000")  # and 12 signal lines
    return ["--data", str(folder)], "A0.hea: the record line says 11 signals, but 12 signal line(s) follow it"


def wfdb_rate_0(tmp: Path) -> tuple[list[str], str]:
    folder = _wfdb(tmp, record_line="{name} 12 0 5000")
    return ["--data", str(folder)], "A0.hea, line 1: sampling rate '0' is not a number of Hz from 1 to 100000"


def labels_csv_row_naming_no_record(tmp: Path) -> tuple[list[str], str]:
    folder = _wfdb(tmp)
    (tmp / "labels.csv").write_text("record,labels\nA0,AF\nA1,AF\nA2,NORM\nA3,NORM\nZZ9,AF\n")
    return (["--data", str(folder), "--labels", str(tmp / "labels.csv")],
            "1 record(s) listed have no WFDB header under "
            f"{folder} (first: 'ZZ9'); pass skip_bad_records=True (--skip-bad-records) to load the records that have one")


# ---- issue 24: .npz fields, PTB-XL tables, values --------------------------------------------------------------


def _npz(tmp: Path, **arrays: np.ndarray) -> Path:
    base = {"signals": np.zeros((4, 8, 500), np.int16), "labels": np.array([[1, 0], [0, 1]] * 2, np.uint8),
            "class_names": np.array(["A", "B"])}
    path = tmp / "d.npz"
    np.savez(path, **{**base, **arrays})
    return path


def npz(message: str, **arrays: np.ndarray) -> Callable[[Path], tuple[list[str], str]]:
    return lambda tmp: (["--data", str(_npz(tmp, **arrays)), "--fs", "50"], f"d.npz: {message}")


OBJECTS = "is an array of Python objects, which is never unpickled; save it as numbers or text"


def ptbxl_nested_scp_codes(tmp: Path) -> tuple[list[str], str]:
    """A PTB-XL table whose scp_codes cell is an expression ast.literal_eval runs out of memory on."""
    root = tmp / "ptbxl"
    root.mkdir()
    (root / "scp_statements.csv").write_text(",diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass\n"
                                             "NORM,1.0,,,NORM,NORM\nSR,,,1.0,,\n")
    nested = "{'NORM': " + "-" * 100_000 + "1}"
    (root / "ptbxl_database.csv").write_text(
        "ecg_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr\n"
        f'1,60,0,"{nested}",1,records100/00001_lr,records500/00001_hr\n')
    return (["--data", str(root)],
            "ptbxl_database.csv, line 2: scp_codes \"{'NORM': " + "-" * 67 + "... is not a dict of statements like "
            "{'NORM': 100.0}")  # the value quoted in 80 characters


def labels_csv_age(age: str) -> Callable[[Path], tuple[list[str], str]]:
    def build(tmp: Path) -> tuple[list[str], str]:
        folder = _wfdb(tmp)
        (tmp / "labels.csv").write_text(f"record,labels,age\nA0,AF,60\nA1,AF,{age}\nA2,NORM,\nA3,NORM,70\n")
        return (["--data", str(folder), "--labels", str(tmp / "labels.csv")],
                f"labels.csv, line 3: age '{age}' is not a number of years from 0 to 125 (leave the cell empty "
                "when it is unknown)")
    return build


def hefei_age_999(tmp: Path) -> tuple[list[str], str]:
    folder = _hefei(tmp)
    label_file = next(p for p in folder.iterdir() if p.name.endswith("_train.txt"))
    lines = label_file.read_text(encoding="utf-8").split("\n")
    fields = lines[1].split("\t")
    fields[1] = "999"
    lines[1] = "\t".join(fields)
    label_file.write_text("\n".join(lines), encoding="utf-8")
    return ["--data", str(folder)], f"{label_file.name}, line 2: age '999' is not a number of years from 0 to 125"


# ---- issue 24: what a record's bytes may hold ---------------------------------------------------------------------


def escape_codes_in_a_record(tmp: Path) -> tuple[list[str], str]:
    folder, record = _hefei_record(tmp, "syn0-000001")
    lines = record.read_text().split("\n")
    lines[0] = "I \x1b]0;owned\x07 V1 V2 V3 V4 V5 V6"  # sets the terminal's title if printed raw
    record.write_text("\n".join(lines))
    return ["--data", str(folder)], "has no lead 'II' (leads: I \\x1b]0;owned\\x07 V1 V2 V3 V4 V5 V6)"


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
    "--no-dashboard with --address": option("--address", "auto", "--no-dashboard",
                                            message="--no-dashboard only applies to the local Ray a search starts, not "
                                                    "to the cluster at --address auto"),
    "--dashboard-host with --no-dashboard": option("--no-dashboard", "--dashboard-host", "0.0.0.0",
                                                   message="--dashboard-host 0.0.0.0 has no dashboard to place with "
                                                           "--no-dashboard"),
    "--trust-run-folder without --resume": option("--trust-run-folder",
                                                  message="--trust-run-folder only applies with --resume"),
    # issue 24 -- data folders
    "a symlink loop named by a label": _replaced_by(lambda record: os.symlink(record.name, record),
                                                   "{record}: cannot read (Too many levels of symbolic links)"),
    "a dangling symlink named by a label": _replaced_by(lambda record: os.symlink("/nowhere/x.txt", record),
                                                       "{record}: cannot read (No such file or directory)"),
    "a FIFO as a record (never read)": _replaced_by(os.mkfifo, "{record}: a FIFO, not a file that can be read"),
    "a folder as a record": _replaced_by(Path.mkdir, "{record}: a folder, not a file that can be read"),
    "WFDB signal count disagrees with its lines": wfdb_signal_count_disagrees,
    "WFDB sampling rate 0": wfdb_rate_0,
    "labels-CSV row naming no record: the hint is an option": labels_csv_row_naming_no_record,
    # .npz fields: object arrays are refused by np.load without unpickling; each is one line naming the field
    ".npz object signals": npz(f"'signals' {OBJECTS}", signals=np.zeros((4, 8, 500)).astype(object)),
    ".npz object lead_names": npz(f"'lead_names' {OBJECTS}", lead_names=np.array(list("ABCDEFGH"), dtype=object)),
    ".npz object fs": npz(f"'fs' {OBJECTS}", fs=np.array(500, dtype=object)),
    ".npz fs 0": npz("'fs' sampling rate '0' is not a number of Hz from 1 to 100000", fs=np.array(0)),
    ".npz fs NaN": npz("'fs' sampling rate 'nan' is not a number of Hz from 1 to 100000", fs=np.array(np.nan)),
    ".npz fs of several values": npz("'fs' must be one rate for every record, got shape (2,)",
                                     fs=np.array([500, 250])),
    ".npz with no classes": npz("no record carries a label (4 records, no classes)",
                                labels=np.zeros((4, 0), np.uint8), class_names=np.array([], dtype="<U1")),
    "PTB-XL scp_codes nested past the parser's memory": ptbxl_nested_scp_codes,
    # values
    "labels-CSV age inf": labels_csv_age("inf"),
    "labels-CSV age 1e300": labels_csv_age("1e300"),
    "Hefei label age 999": hefei_age_999,
    ".npz age 1e9": npz("record 1 '1': age '1000000000.0' is not a number of years from 0 to 125",
                        age=np.array([60, 1e9, 70, 80])),
    # options: refused before Ray starts, naming the option
    "--gpus-per-trial inf": option("--gpus-per-trial", "inf",
                                   message="--gpus-per-trial must be a finite number, got 'inf'"),
    "--gpus-per-trial nan": option("--gpus-per-trial", "nan",
                                   message="--gpus-per-trial must be a finite number, got 'nan'"),
    "--seed 2**32": option("--seed", str(2**32), message=f"--seed must be an integer from 0 to 2**32 - 1 (4294967295), "
                                                        f"got '{2**32}'"),
    "--cpus-per-trial nan": option("--cpus-per-trial", "nan", message="--cpus-per-trial must be a finite number"),
    "--time-budget 0": option("--time-budget", "0", message="--time-budget must be > 0 (minutes), got 0.0"),
    "--time-budget -5": option("--time-budget", "-5", message="--time-budget must be > 0 (minutes), got -5.0"),
    "--time-budget inf": option("--time-budget", "inf", message="--time-budget must be a finite number, got 'inf'"),
    "--memory-per-trial inf": option("--memory-per-trial", "inf", message="--memory-per-trial must be a finite number"),
    "--fs 1000000": option("--fs", "1000000", message="--fs must be an integer from 50 to 100000 Hz, got 1000000"),
    "--address with port 99999": option("--address", "head:99999",
                                        message="--address 'head:99999' is not auto or HOST:PORT (a port from 1 to "
                                                "65535)"),
    "--n-records beyond memory": option("--n-records", str(10**10),
                                        message=f"--n-records {10**10} at 250 Hz (a synthetic set): the signals "
                                                "alone would take 372,529.0 GiB (10000000000 records x 8 leads x 2500 "
                                                "samples as int16), more than half this machine's"),
    # terminal safety: control characters from a record or an argument reach the terminal escaped
    "escape codes in a record": escape_codes_in_a_record,
    "an unknown option holding escape codes": option("--\x1b[2Jwipe",
                                                     message="unrecognized arguments: '--\\x1b[2Jwipe'"),
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
    try:
        code = launch.main(["--results-dir", str(results), "--n-records", "20", *argv])  # the case's own last
    except SystemExit as stop:  # argparse's refusals exit from the parser
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("launch.py: error: "), err
    assert message in err, err
    assert err[:-1].isprintable(), err  # no control character reaches the terminal
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before  # no run folder, nothing else
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # no cache entry, not half
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def refused_by_ecg_train(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    """`python -m ecg.train ARGV --out OUT` (in this process) ends with one line naming `message`, exit 2, and
    writes neither OUT nor a cache entry (ECG_CACHE_DIR is tmp_path/cache)."""
    from ecg.train.__main__ import main as train_main

    out = tmp_path / "train-out"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train_main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and err.startswith("python -m ecg.train: error: ") and message in err, err
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("case", ["garbage .npz", "text in a Hefei record", "empty folder"])
def test_ecg_train_refuses_bad_data_in_one_line_before_writing(case, tmp_path, capsys, own_cache) -> None:
    argv, message = CASES[case](tmp_path)
    refused_by_ecg_train([*argv, "--family", "ecgnet"], message, tmp_path, capsys)


def test_ecg_train_refuses_an_unknown_model_option_in_one_line_before_writing(tmp_path, capsys, own_cache) -> None:
    refused_by_ecg_train(["--family", "ecgnet", "--model", "no_such_option=3", "--n-records", "40", "--fs", "100",
                          "--length", "1000"], "no_such_option", tmp_path, capsys)


# ---- issue 24: python -m ecg.train's values, and what a load must not trip over -------------------------------------

SMALL_TRAIN = ["--family", "ecgnet", "--n-records", "40", "--fs", "100", "--length", "1000", "--epochs", "1"]


def _config_csv(tmp: Path, **cells: object) -> str:
    """A best_configs.csv row as a search writes it (every training setting filled), with `cells` changed."""
    import pandas as pd

    from ecg.train import TrainConfig, TrialConfig

    row = {"rank": 1, "trial_id": "a1b2c3d4",
           **TrialConfig("ecgnet", {"version": "v1", "dropout": 0.1}, TrainConfig(epochs=1)).to_flat(), **cells}
    path = tmp / "best_configs.csv"
    pd.DataFrame([row]).to_csv(path, index=False)  # NaN is written as an empty cell
    return str(path)


def config_csv(message: str, **cells: object) -> Callable[[Path], tuple[list[str], str]]:
    return lambda tmp: (["--config-csv", _config_csv(tmp, **cells)], f"best_configs.csv, row 0 (line 2): {message}")


def fifo_config_csv(tmp: Path) -> tuple[list[str], str]:
    os.mkfifo(tmp / "best_configs.csv")
    return ["--config-csv", str(tmp / "best_configs.csv")], "best_configs.csv: a FIFO, not a file that can be read"


TRAIN_CASES = {
    # a NaN or text in a numeric column was the default, silently; now the cell is named with its value
    "--config-csv optim/lr 'nan'": config_csv("optim/lr must be a finite number, got 'nan'", **{"optim/lr": "nan"}),
    "--config-csv optim/lr NaN (an empty cell)": config_csv(
        "optim/lr is empty; give it a value or leave the column out for the default (0.001)", **{"optim/lr": np.nan}),
    "--config-csv optim/batch_size text": config_csv("optim/batch_size must be an integer, got 'many'",
                                                     **{"optim/batch_size": "many"}),
    "--config-csv model/dropout inf": config_csv("model/dropout must be a finite number, got 'inf'",
                                                 **{"model/dropout": "inf"}),
    "--config-csv optim/seed -1": config_csv("optim/seed must be an integer from 0 to 2**32 - 1", **{"optim/seed": -1}),
    "--config-csv data/fs NaN text": config_csv("data/fs must be an integer, got 'NaN'", **{"data/fs": "NaN"}),
    "--config-csv a FIFO (never read)": fifo_config_csv,
    "--split-seed 2**32": option("--split-seed", str(2**32), message="the seed of the split and synthetic set must be "
                                                                     "an integer from 0 to 2**32 - 1"),
    "--leads I,I": option("--leads", "I,I", message="leads 'I,I' name 'I' twice"),
    "--n-records beyond memory": option("--n-records", str(10**10), message=f"--n-records {10**10} at 100 Hz (a "
                                                                           "synthetic set): the signals alone"),
    "--lr inf": option("--lr", "inf", message="optim/lr must be a finite number, got 'inf'"),
    "--device tpu": option("--device", "tpu", message="argument --device: invalid choice: 'tpu'"),
}


@pytest.mark.parametrize("case", TRAIN_CASES, ids=list(TRAIN_CASES))
def test_ecg_train_refuses_bad_values_in_one_line_before_writing(case, tmp_path, capsys, own_cache) -> None:
    argv, message = TRAIN_CASES[case](tmp_path)
    refused_by_ecg_train([*SMALL_TRAIN, *argv], message, tmp_path, capsys)


def test_links_no_label_names_do_not_stop_a_load(tmp_path, capsys, monkeypatch) -> None:
    """A symlink loop and a dangling symlink beside the records, named by no label: the cache's key (os.stat of
    every .txt there) no longer fails on them, and the run trains and writes its outputs and its cache entry."""
    from ecg.data import cache
    from ecg.data.hefei import write_hefei
    from ecg.synthetic import generate
    from ecg.train.__main__ import main as train_main

    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_hefei(generate(30, seed=0), tmp_path / "hefei")
    records = next(p for p in folder.iterdir() if p.is_dir())
    os.symlink("loop.txt", records / "loop.txt")
    os.symlink("/nowhere/gone.txt", records / "gone.txt")
    out = tmp_path / "train-out"
    assert train_main(["--data", str(folder), *SMALL_TRAIN[:2], *SMALL_TRAIN[4:], "--out", str(out)]) == 0
    assert (out / "test_metrics.csv").is_file()
    datasets = [e for e in (tmp_path / "cache").iterdir() if not e.name.startswith(".") and e.name != cache.DRAWS]
    assert len(datasets) == 1
