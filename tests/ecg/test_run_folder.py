"""The run folder's owner: run.json as a typed record, the lock (one writer, none left stale), reading back files
that were damaged after they were written, and knowing when a folder was moved or copied."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ecg.run_folder import (ENDED_SILENTLY, LEGACY_STUDY_NAME, RUN_FILE, TRIALS, DataRecord, RunFolder,
                            RunFolderError, RunLocked, RunRecord)


def _record(**extra) -> RunRecord:
    return RunRecord(status="running", space="gru", seed=3, args={"space": "gru", "seed": 3},
                     data=DataRecord(fingerprint="abc", split={"train": 7, "val": 1, "test": 2}), **extra)


def _saved(tmp_path: Path, record: RunRecord | None = None) -> RunFolder:
    folder = RunFolder(tmp_path)
    with folder.locked():
        folder.save(record or _record())
    return RunFolder.open(tmp_path)


def test_written_record_reads_back_typed_and_leaves_out_what_is_unset(tmp_path) -> None:
    record = _record()
    record.fit_started, record.skipped_winners = 1700000000.5, []
    folder = _saved(tmp_path, record)
    text = json.loads((tmp_path / RUN_FILE).read_text())
    assert text["status"] == "running" and text["fit_started"] == 1700000000.5
    assert text["skipped_winners"] == []  # an empty list is a fact (no checkpoint was skipped)
    assert "failure" not in text and "resumes" not in text and "relocations" not in text and "winners" not in text
    assert text["data"] == {"fingerprint": "abc", "split": {"train": 7, "val": 1, "test": 2}, "skipped_records": []}
    again = folder.record
    assert isinstance(again.data, DataRecord) and again.data.split["val"] == 1 and again.data.fingerprint == "abc"
    assert again.to_dict() == text


def test_keys_of_another_version_survive_a_rewrite(tmp_path) -> None:
    values = {**_record().to_dict(), "from_the_future": {"x": 1}}
    values["data"]["new_fact"] = 7
    (tmp_path / RUN_FILE).write_text(json.dumps(values))
    folder = RunFolder.open(tmp_path)
    record = folder.record
    assert record.other == {"from_the_future": {"x": 1}} and record.data.other == {"new_fact": 7}
    record.status = "complete"
    with folder.locked():
        folder.save(record)
    written = json.loads((tmp_path / RUN_FILE).read_text())
    assert written["from_the_future"] == {"x": 1} and written["data"]["new_fact"] == 7


def test_space_and_seed_come_from_the_arguments_and_an_old_study_keeps_its_name(tmp_path) -> None:
    (tmp_path / RUN_FILE).write_text(json.dumps({"status": "interrupted", "args": {"space": "lstm", "seed": 5},
                                                 "data": {}}))
    folder = RunFolder.open(tmp_path)
    assert (folder.record.space, folder.record.seed, folder.record.status) == ("lstm", 5, "interrupted")
    assert folder.study_name == LEGACY_STUDY_NAME


@pytest.mark.parametrize("text, message", [
    ('{"status": "running", "args": {}, "da', "not valid JSON at line 1 column 35: Unterminated string"),
    ("{", "not valid JSON at line 1 column 2"),
    ('{"status": "running"}', "lacks args, data"),
    ("[1, 2]", "holds a JSON list, not a run record"),
    ('{"status": "x", "args": [], "data": {}}', "'args' and 'data' must be JSON objects"),
    (b"\xff\xfe", "is unreadable"),
])
def test_a_run_record_it_cannot_use_is_refused_in_one_line(tmp_path, text, message) -> None:
    path = tmp_path / RUN_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunFolderError, match=message) as caught:
        RunFolder.open(tmp_path).record
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_not_a_run_folder(tmp_path) -> None:
    with pytest.raises(RunFolderError, match="not a run folder"):
        RunFolder.open(tmp_path)
    with pytest.raises(RunFolderError, match="no such folder"):
        RunFolder.open(tmp_path / "absent")


def test_create_makes_a_new_locked_folder_and_never_reuses_a_name(tmp_path) -> None:
    first, second = RunFolder.create(tmp_path, "gru"), RunFolder.create(tmp_path, "gru")
    assert first.path != second.path and first.path.name.startswith("gru-") and first.is_locked_here
    holder = first.holder()
    assert holder is not None and holder.pid == os.getpid()


HOLD = """
import sys, time
from ecg.run_folder import RunFolder
folder = RunFolder(sys.argv[1]); folder.lock(); print("locked", flush=True); time.sleep(60)
"""


def _holding_process(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_folder_still_starting_is_refused_naming_its_holder_and_once_it_died_is_not_a_run_folder(tmp_path) -> None:
    """A search holds its folder's lock before run.json exists (the data split, Ray starting): opening it then
    names that process instead of calling the folder "not a run folder"; once it is gone, it is not one."""
    proc = _holding_process(tmp_path)
    try:
        with pytest.raises(RunLocked) as caught:
            RunFolder.open(tmp_path)
        message = str(caught.value)
        assert "still starting" in message and f"pid {proc.pid}" in message and f"kill -TERM {proc.pid}" in message
        assert "\n" not in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(RunFolderError, match="not a run folder") as caught:
        RunFolder.open(tmp_path)
    assert not isinstance(caught.value, RunLocked)


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_stale_lock(tmp_path) -> None:
    folder = _saved(tmp_path)  # run.json says running
    proc = _holding_process(tmp_path)
    try:
        with pytest.raises(RunLocked) as caught:
            RunFolder(tmp_path).lock()
        message = str(caught.value)
        assert f"pid {proc.pid}" in message and "since" in message and f"kill -TERM {proc.pid}" in message
        assert folder.status() == "running"  # a live holder: it is running
        with pytest.raises(RunLocked):
            with RunFolder(tmp_path).locked():
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The OS lock died with the process: the record's `running` is now known to have ended silently.
    assert RunFolder.open(tmp_path).status() == ENDED_SILENTLY
    again = RunFolder(tmp_path)
    again.lock()
    assert again.status() == ENDED_SILENTLY  # its next writer (a --resume) sees so too, holding the lock itself
    again.save(again.record)
    assert again.status() == "running"  # its own search now
    assert again.holder().pid == os.getpid()
    again.unlock()


def test_writing_without_the_lock_is_a_programming_error(tmp_path) -> None:
    folder = RunFolder(tmp_path)
    with pytest.raises(RuntimeError, match="without its lock"):
        folder.save(_record())
    with pytest.raises(RuntimeError, match="without its lock"):
        folder.write_csv(TRIALS, pd.DataFrame({"a": [1]}))
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder_cannot_be_locked(tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder anyway")
    (tmp_path / RUN_FILE).write_text(json.dumps(_record().to_dict()))
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(RunFolderError, match="cannot write in this run folder"):
            RunFolder(tmp_path).lock()
    finally:
        tmp_path.chmod(0o755)


def test_csvs_read_back_and_damage_is_one_line(tmp_path) -> None:
    folder = RunFolder(tmp_path)
    assert folder.read_csv(TRIALS).empty  # absent: an interrupted run has no test results
    (tmp_path / TRIALS).write_text("trial_id,status,best\n0001e5,TERMINATED,0.5\n")
    frame = folder.read_csv(TRIALS)
    assert frame["trial_id"].tolist() == ["0001e5"] and frame["best"].tolist() == [0.5]  # ids stay text
    (tmp_path / TRIALS).write_text("trial_id,status,best\n0001e5,TERMINATED,0.5\na2,TERMIN")
    with pytest.raises(RunFolderError, match=r"trials.csv ends in the middle of line 3 \(the file was cut short\)"):
        folder.read_csv(TRIALS)
    (tmp_path / TRIALS).write_text("trial_id,status\na,TERMINATED,0.5,9\n")  # pandas would make an index of it
    with pytest.raises(RunFolderError, match="trials.csv, line 2: 4 fields where the header has 2"):
        folder.read_csv(TRIALS)
    (tmp_path / TRIALS).write_text("trial_id,status\na,TERMINATED\nb\n")
    with pytest.raises(RunFolderError, match="line 3: 1 fields where the header has 2"):
        folder.read_csv(TRIALS)


def test_a_folder_knows_when_it_was_moved(tmp_path) -> None:
    here = tmp_path / "run"
    here.mkdir()
    _saved(here, _record(location=str(here.resolve())))
    assert RunFolder.open(here).relocated_from() is None
    there = tmp_path / "elsewhere"
    here.rename(there)
    moved = RunFolder.open(there)
    assert moved.relocated_from() == str(here.resolve())
    assert moved.study_url == f"sqlite:///{there.resolve() / 'optuna.db'}"
    assert moved.experiment_dir() == there.resolve() / "tune"
    assert moved.experiment_dir(tmp_path / "shared") == (tmp_path / "shared").resolve() / "elsewhere" / "tune"


def test_the_lock_is_not_inherited_by_child_processes(tmp_path) -> None:
    folder = RunFolder(tmp_path)
    folder.lock()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        folder.unlock()
        time.sleep(0.2)
        other = RunFolder(tmp_path)
        other.lock()  # the child holds no copy of the lock's descriptor
        other.unlock()
    finally:
        child.kill()
        child.wait()
