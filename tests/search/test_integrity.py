"""search.integrity's listing of the state files Ray unpickles, on hand-made experiment folders (no Ray).

The listing runs at every experiment snapshot of a search (`DigestRecorder`) and once before a resume
(`verify`): it reads the experiment folder and each trial's folder, not the trials' checkpoint folders.
tests/search/test_safety.py checks it on a real search's folder.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from search import integrity

TRIAL = "train_trial_0eee4e5c_0_gru"


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def experiment(root: Path) -> Path:
    """A folder laid out as Ray Tune writes one search's: its state files, a trial with its checkpoint."""
    tune = root / "tune"
    checkpoint = tune / TRIAL / "checkpoint_000002"
    checkpoint.mkdir(parents=True)
    for name in ("tuner.pkl", "experiment_state-2026-12-07_19-11-27.json", "searcher-state-2026-12-07_19-11-27.pkl",
                 "search_gen_state-2026-12-07_19-11-27.json", ".validate_storage_marker", "basic-variant-state-x.json",
                 "callback-states-2026-12-07_19-11-27.pkl"):
        (tune / name).write_bytes(name.encode())
    for name in ("params.json", "params.pkl", "error.pkl", "result.json", "progress.csv", ".params.pkl.tmp"):
        (tune / TRIAL / name).write_bytes(name.encode())
    for name in ("model.safetensors", "meta.json", "training_state.pt"):
        (checkpoint / name).write_bytes(name.encode())
    return tune


def test_it_lists_the_experiment_and_trial_state_files_by_name_and_nothing_else(tmp_path) -> None:
    tune = experiment(tmp_path)
    listed = list(integrity.state_files(tune))
    assert [name for name, _ in listed] == [
        "basic-variant-state-x.json", "callback-states-2026-12-07_19-11-27.pkl",
        "experiment_state-2026-12-07_19-11-27.json", "search_gen_state-2026-12-07_19-11-27.json",
        "searcher-state-2026-12-07_19-11-27.pkl", f"{TRIAL}/error.pkl", f"{TRIAL}/params.pkl", "tuner.pkl"]
    assert all(path == tune / name for name, path in listed)


def test_a_checkpoint_folder_is_not_read_and_a_link_to_a_folder_is_not_followed(tmp_path) -> None:
    tune = experiment(tmp_path)
    # Only the trainable reads a checkpoint folder (safetensors, weights-only torch, JSON); Ray unpickles a
    # checkpoint's file only for class trainables (test_ray_internals), and ours is a function.
    (tune / TRIAL / "checkpoint_000002" / "stray.pkl").write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "params.pkl").write_bytes(b"x")
    os.symlink(elsewhere, tune / "linked_trial")
    names = [name for name, _ in integrity.state_files(tune)]
    assert not any("stray" in name or name.startswith("linked_trial") for name in names), names
    assert len(names) == 8


def test_a_folder_that_is_not_there_or_not_a_folder_lists_nothing(tmp_path) -> None:
    assert list(integrity.state_files(tmp_path / "missing")) == []
    (tmp_path / "file").write_text("x")
    assert list(integrity.state_files(tmp_path / "file")) == []


def test_recorded_files_verify_and_a_changed_trial_pickle_is_refused(tmp_path) -> None:
    tune = experiment(tmp_path)
    integrity.record(tmp_path, tune)
    recorded = json.loads((tmp_path / integrity.RECORD_FILE).read_text())["files"]
    assert set(recorded) == {name for name, _ in integrity.state_files(tune)}
    integrity.verify(tmp_path, tune)
    (tune / TRIAL / "params.pkl").write_bytes(pickle.dumps({"not": "ours"}))
    with pytest.raises(integrity.IntegrityError, match=f"{TRIAL}/params.pkl does not match the digest"):
        integrity.verify(tmp_path, tune)


def test_a_pickle_added_to_a_trial_folder_after_the_record_is_refused(tmp_path) -> None:
    tune = experiment(tmp_path)
    integrity.record(tmp_path, tune)
    (tune / TRIAL / "planted.pkl").write_bytes(pickle.dumps(1))
    with pytest.raises(integrity.IntegrityError, match="planted.pkl does not match the digest"):
        integrity.verify(tmp_path, tune)


def test_a_record_digests_only_what_changed_since_its_last_snapshot(tmp_path) -> None:
    tune = experiment(tmp_path)
    record = integrity.Record(tmp_path)
    assert record.add(tune) is True
    assert record.add(tune) is False  # nothing new: listed and stat'ed, not read again
    state = tune / "experiment_state-2026-12-07_19-11-27.json"
    state.write_bytes(b"the next snapshot")
    assert record.add(tune) is True
    assert len(record.files["experiment_state-2026-12-07_19-11-27.json"]) == 2
