"""Faults the search survives, each injected on purpose (docs/reliability.md lists them with these tests),
modelled on Ray's python/ray/tune/tests/test_cluster.py and test_tuner_restore.py. Tiny generated data
(120 records at 250 Hz x 2,500 samples, the small ECGNet space). The searches whose faults are the trials' join the
session's `ray start` cluster (`ray_cluster`, tests/search/conftest.py); those stopped by a signal start their own
local Ray, as a user's search does, and the node-removal test makes a two-node cluster of its own.

Faults 1-3 and 7 share one search (the module fixture `faulty_run`): `ECG_SEARCH_FAULT` (search/faults.py)
gives each trial its own fault, so one Ray run shows a retried trial, a trial that keeps failing, a NaN loss,
an out-of-memory error and corrupt winners' checkpoints side by side. Fault 4 (driver SIGKILL) is
tests/search/test_run_folder_events.py::test_a_killed_run_resumes_in_place_rerunning_no_finished_trial.
Run the group: python -m pytest tests/search -m faults -s
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch

from ecg import run_folder
from search.faults import FAULT_ENV
from search.options import SearchOptions
from search.endings import resume_command

pytestmark = pytest.mark.faults

# Trial numbers (the study's, from 0: `trial_number` in trials.csv) and the fault each one meets.
RETRIED, KEEPS_FAILING, NAN, OOM = 0, 1, 2, 3
CORRUPT = (4, 5)  # with trial 0 the only intact finished trial and --top-k 2, a corrupt one is always in the top 2
FAULTS = (f"raise@2;trials={RETRIED};times=1 | raise@1;trials={KEEPS_FAILING} | nan@1;trials={NAN} | "
          f"oom@1;trials={OOM} | corrupt@0;trials={','.join(map(str, CORRUPT))}")
NUM_SAMPLES, MAX_EPOCHS, MAX_FAILURES = 6, 2, 2


def report(fault: str, trials: pd.DataFrame, num_samples: int) -> None:
    """The per-fault figures docs/reliability.md quotes (shown with pytest -s)."""
    finished = int((trials["status"] == "TERMINATED").sum())
    errored = int((trials["status"] == "ERROR").sum())
    print(f"\n{fault}: trials {len(trials)} of {num_samples}, finished {finished}, errored {errored}, "
          f"lost {num_samples - len(trials)}")


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory, cli, ray_cluster):
    results = tmp_path_factory.mktemp("faulty")
    proc = cli.launch(*cli.small, "--num-samples", str(NUM_SAMPLES), "--max-epochs", str(MAX_EPOCHS),
                      "--scheduler", "fifo", "--top-k", "2", "--max-failures", str(MAX_FAILURES),
                      "--results-dir", str(results), "--address", ray_cluster.address,
                      env={**ray_cluster.env, FAULT_ENV: FAULTS})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(results)
    trials = cli.read_csv(run_dir / "trials.csv").set_index("trial_number")
    return proc, run_dir, trials


def study_trial_of(cli, run_dir: Path, row: pd.Series) -> optuna.trial.FrozenTrial:
    """The Optuna trial that proposed trials.csv's `row` (matched on its sampled learning rate and width)."""
    matches = [t for t in cli.study_trials(run_dir)
               if math.isclose(t.params["optim/lr"], row["optim/lr"], rel_tol=1e-9)
               and t.params["model/width"] == row["model/width"]]
    assert len(matches) == 1, matches
    return matches[0]


def raw_epochs(cli, run_dir: Path, trial_id: str) -> list[int]:
    """Every epoch the trial reported, in order, retries included (Ray's progress.csv appends)."""
    (trial_dir,) = (run_dir / "tune").glob(f"train_trial_{trial_id}_*")
    progress = trial_dir / "progress.csv"
    if not progress.exists() or progress.stat().st_size == 0:
        return []  # nothing reported (a trial that failed in its first epoch)
    return cli.read_csv(progress)["epoch"].astype(int).tolist()


@pytest.mark.slow
def test_1_a_trial_that_raises_is_retried_from_its_checkpoint(faulty_run, cli) -> None:
    _, run_dir, trials = faulty_run
    row = trials.loc[RETRIED]
    assert row["status"] == "TERMINATED" and row["epochs_run"] == MAX_EPOCHS
    assert (row["failures"], row["retries"]) == (1, 1)
    assert "fault injected by ECG_SEARCH_FAULT at epoch 2 (attempt 1)" in row["error"]
    # It failed at the end of epoch 2 and resumed from epoch 1's checkpoint: epoch 1 was reported once.
    assert raw_epochs(cli, run_dir, row["trial_id"]) == [1, 2]
    epochs = cli.read_csv(run_dir / "epochs.csv")
    assert epochs.loc[epochs["trial_id"] == row["trial_id"], "epoch"].tolist() == [1, 2]
    report("fault 1 (raise, retried)", trials, NUM_SAMPLES)


def errored(faulty_run, number: int) -> tuple[Path, pd.Series]:
    """The shared faulty search's folder and trials.csv's row of trial `number`, which must have ended ERROR."""
    _, run_dir, trials = faulty_run
    row = trials.loc[number]
    assert row["status"] == "ERROR", row
    return run_dir, row


@pytest.mark.slow
def test_1_a_trial_that_keeps_failing_ends_errored_and_the_others_finish(faulty_run, cli) -> None:
    run_dir, row = errored(faulty_run, KEEPS_FAILING)
    trials = faulty_run[2]
    assert (row["failures"], row["retries"]) == (MAX_FAILURES + 1, MAX_FAILURES)
    assert f"at epoch 1 (attempt {MAX_FAILURES + 1})" in row["error"]
    assert len(trials) == NUM_SAMPLES  # every trial ran; none lost
    assert set(trials.loc[[RETRIED, *CORRUPT], "status"]) == {"TERMINATED"}
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_2_a_nan_loss_fails_the_trial_with_its_reason_and_optuna_records_fail(faulty_run, cli) -> None:
    run_dir, row = errored(faulty_run, NAN)
    trials = faulty_run[2]
    assert row["error"].startswith("non-finite loss: loss is nan")
    # Retries stop at once (the fatal marker): no attempt trained a second epoch 1.
    assert raw_epochs(cli, run_dir, row["trial_id"]) == []
    study_trial = study_trial_of(cli, run_dir, row)
    assert study_trial.state == optuna.trial.TrialState.FAIL and study_trial.value is None
    states = [t.state for t in cli.study_trials(run_dir)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3 and states.count(optuna.trial.TrialState.FAIL) == 3
    report("fault 2 (NaN loss)", trials, NUM_SAMPLES)


@pytest.mark.slow
def test_3_out_of_memory_fails_the_trial_and_suggests_a_fix(faulty_run, cli) -> None:
    run_dir, row = errored(faulty_run, OOM)
    trials = faulty_run[2]
    assert row["error"].startswith(f"out of memory at batch size {int(row['optim/batch_size'])}: use a smaller "
                                   "optim/batch_size or give each trial a larger GPU share (--gpus-per-trial")
    assert "CUDA out of memory" in row["error"]
    assert study_trial_of(cli, run_dir, row).state == optuna.trial.TrialState.FAIL
    report("fault 3 (out of memory)", trials, NUM_SAMPLES)


@pytest.mark.slow
def test_7_corrupt_winner_checkpoints_are_skipped_for_the_next_best(faulty_run, cli) -> None:
    proc, run_dir, trials = faulty_run
    corrupt_ids = set(trials.loc[list(CORRUPT), "trial_id"])
    ranked = trials[trials["status"] == "TERMINATED"].sort_values("best_val_micro_f1", ascending=False)
    info = json.loads((run_dir / "run.json").read_text())
    # Both corrupt trials are met (one is always in the top 2) and skipped; the intact one is evaluated.
    assert [s["trial_id"] for s in info["skipped_winners"]] == [t for t in ranked["trial_id"] if t in corrupt_ids]
    assert info["winners"] == [trials.loc[RETRIED, "trial_id"]]
    for skipped in info["skipped_winners"]:
        assert f"of trial {skipped['trial_id']} is unusable" in skipped["reason"]
        assert f"of trial {skipped['trial_id']} is unusable" in proc.stdout
    assert "evaluating the next-best trial instead" in proc.stdout
    test = cli.read_csv(run_dir / "test_results.csv")
    assert test["model"].tolist() == ["rank1"] * 3 and set(test["trial_id"]) == set(info["winners"])  # 3 threshold rules
    assert cli.read_csv(run_dir / "best_configs.csv")["trial_id"].tolist() == info["winners"]
    assert len(trials) == NUM_SAMPLES  # nothing else lost
    report("fault 7 (corrupt checkpoints)", trials, NUM_SAMPLES)


# How schedulers and terminals stop a job: Ctrl-C reaches the driver; SIGTERM the driver (Kubernetes, docker stop,
# SLURM's batch step), with SIGKILL after a grace period; SIGHUP the terminal's whole process group, as `timeout`
# and `kill -- -PGID` signal a group too. Each stops the search the same way; the exit code names the signal.
STOPS = [("SIGINT", "driver", 130), ("SIGTERM", "driver", 143), ("SIGHUP", "group", 129)]
GRACE_S = 10  # a scheduler's SIGKILL comes this long after its SIGTERM (Kubernetes' default is 30 s, docker's 10)


@pytest.mark.slow
@pytest.mark.parametrize("name, target, code", STOPS, ids=[s[0] for s in STOPS])
def test_5_a_stop_signal_stops_within_seconds_writing_what_finished(name, target, code, tmp_path, cli) -> None:
    # The results folder's name has shell syntax in it: the printed command must quote it (nothing runs).
    results = tmp_path / "runs; touch PWNED"
    args = [*cli.small, "--num-samples", "3", "--max-epochs", "2", "--scheduler", "fifo", "--top-k", "1",
            "--max-concurrent", "1", "--results-dir", str(results)]
    # The second trial (number 1) waits at the end of its first epoch for trials that never come (at most 120 s):
    # the signal lands mid-trial however slowly this machine runs the checks before it.
    logs = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(logs[0], "w") as stdout, open(logs[1], "w") as stderr:  # files, not pipes: a full pipe would block
        driver = cli.start(*args, env=cli.env(**{FAULT_ENV: "hold@1;n=9;trials=1"}), stdout=stdout, stderr=stderr)
    finished: set[str] = set()
    killed = False
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None and not finished:
            time.sleep(1)
            if results.exists() and any(results.iterdir()):
                finished = cli.finished_trials(cli.only_run(results), 2)
        assert finished, "no trial finished before the deadline"
        time.sleep(2)  # into the next trial
        run_dir = cli.only_run(results)
        if name == "SIGTERM":  # while it runs, a second writer is refused, naming the search's process
            _a_second_writer_is_refused(cli, run_dir, driver.pid)
        signalled = time.time()
        sig = getattr(signal, name)
        os.killpg(driver.pid, sig) if target == "group" else os.kill(driver.pid, sig)
        try:
            driver.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            killed = True  # the scheduler's SIGKILL: the test fails below
        stopped_in = time.time() - signalled
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    out, err = (log.read_text() for log in logs)
    assert not killed and driver.returncode == code, f"exit {driver.returncode}; {err[-3000:]}"
    trials = cli.read_csv(run_dir / "trials.csv")
    done = trials[trials["status"] == "TERMINATED"]
    assert finished <= set(done["trial_id"]) and (done["epochs_run"] == 2).all()
    assert {"trials.csv", "epochs.csv", "best_configs.csv", "run.json"} <= {p.name for p in run_dir.iterdir()}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["stopped_by"] == name
    command = resume_command(run_dir)
    assert f"Search interrupted ({name}); what finished is in {run_dir}.\nResume with:\n  {command}\n" in out
    assert shlex.split(command)[-1] == str(run_dir.resolve())
    print(f"\nfault 5 ({name} to the {target}): exit {driver.returncode} {stopped_in:.1f} s after the signal; "
          f"finished at the signal {len(done)}")
    if name != "SIGTERM":
        return

    # The printed command, run by a shell exactly as printed (with this interpreter first on PATH).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = subprocess.run(command, shell=True, cwd=cli.root, env=cli.env(PATH=path), text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (cli.root / "PWNED").exists() and not (tmp_path / "PWNED").exists()
    after = cli.read_csv(run_dir / "trials.csv")
    assert len(after) == 3 and set(after["status"]) == {"TERMINATED"}  # none lost to the refused second writer
    assert set(done["trial_id"]) <= set(after["trial_id"])
    for trial_id in done["trial_id"]:  # a finished trial is not rerun
        assert raw_epochs(cli, run_dir, trial_id) == [1, 2]
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and "stopped_by" not in info
    assert set(info["winners"]) <= set(after["trial_id"])
    report(f"fault 5 ({name}) after resume", after, 3)


def _a_second_writer_is_refused(cli, run_dir: Path, pid: int) -> None:
    """`launch.py --resume` and `search.report` on a folder a search is writing: one line naming the search's
    process, exit 2, run.json and the report as they were."""
    record = (run_dir / "run.json").read_bytes()
    proc = cli.launch("--resume", str(run_dir))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{run_dir} is in use by pid {pid} on " in lines[0], proc.stderr[-2000:]
    assert f"kill -TERM {pid}" in lines[0]
    report_proc = subprocess.run([sys.executable, "-m", "search.report", str(run_dir)], cwd=cli.root, env=cli.env(),
                                 text=True, capture_output=True, timeout=120)
    assert report_proc.returncode == 2 and f"is in use by pid {pid}" in report_proc.stderr
    assert (run_dir / "run.json").read_bytes() == record and not (run_dir / "report.html").exists()


@pytest.mark.slow
def test_6_a_worker_node_that_disappears_has_its_trials_rescheduled(tmp_path, monkeypatch, cli) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from search import run

    monkeypatch.setenv(FAULT_ENV, "sleep@1")  # 3 s more per epoch: time to remove the node mid-trial
    # Quick node-death detection (Ray's test_cluster.py does the same), else the GCS waits ~30 s.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False,  # no process the test does not look at
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    shared = tmp_path / "shared"
    removed: dict[str, str] = {}

    def remove_worker_mid_trial() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            for progress in shared.glob("*/tune/train_trial_*/progress.csv"):
                try:
                    frame = cli.read_csv(progress)
                except (pd.errors.EmptyDataError, pd.errors.ParserError):
                    continue
                if len(frame) and frame["node_id"].iloc[-1] == worker.node_id and frame["epoch"].max() < 3:
                    removed["trial_id"] = str(frame["trial_id"].iloc[0])
                    cluster.remove_node(worker)
                    return
            time.sleep(0.5)

    remover = threading.Thread(target=remove_worker_mid_trial, daemon=True)
    try:
        options = SearchOptions(space="ecgnet", n_records=120, num_samples=2, max_epochs=3, scheduler="fifo",
                                top_k=1, results_dir=tmp_path / "results", storage_path=shared,
                                address=cluster.address)
        remover.start()
        run_dir = run(options)
        remover.join(timeout=5)
        head_id = cluster.head_node.node_id
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert removed, "no trial reported from the worker node"
    trials = cli.read_csv(run_dir / "trials.csv").set_index("trial_id")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"} and (trials["epochs_run"] == 3).all()
    moved = trials.loc[removed["trial_id"]]
    assert moved["failures"] >= 1  # the node's death counted as a failure and was retried
    epochs = cli.read_csv(run_dir / "epochs.csv")
    mine = epochs[epochs["trial_id"] == removed["trial_id"]]
    assert mine["epoch"].tolist() == [1, 2, 3] and mine["node_id"].iloc[-1] == head_id  # finished on the head
    progress = next((shared / run_dir.name / "tune").glob(f"train_trial_{removed['trial_id']}_*/progress.csv"))
    assert cli.read_csv(progress)["epoch"].tolist().count(1) == 1  # resumed from its checkpoint, not from scratch
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    report("fault 6 (node removed)", trials.reset_index(), 2)


def test_8_disk_full_at_export_keeps_the_csvs_already_written(tmp_path, monkeypatch) -> None:
    trials = run_folder.write_csv(pd.DataFrame({"trial_id": ["a", "b"], "status": ["TERMINATED", "ERROR"]}),
                               tmp_path / "trials.csv")
    run_folder.write_json({"status": "complete"}, tmp_path / "run.json")
    written = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    def disk_full_midway(frame, path, *args, **kwargs):
        with open(path, "w") as half:
            half.write("trial_id,sta")  # half a file, then the disk is full
        raise OSError(28, "No space left on device")

    real_write_text = Path.write_text

    def json_disk_full_midway(self, data, *args, **kwargs):
        real_write_text(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    # At the pandas and file boundary: the writers under write_atomic fail after writing half their data.
    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full_midway)
    monkeypatch.setattr(Path, "write_text", json_disk_full_midway)
    with pytest.raises(OSError, match="No space left"):
        run_folder.write_csv(pd.DataFrame({"trial_id": ["a", "b", "c"]}), trials)
    with pytest.raises(OSError, match="No space left"):
        run_folder.write_json({"status": "changed"}, tmp_path / "run.json")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == written  # intact, no temporary file left


def test_safe_dashboard_binds_to_loopback_and_warns_when_exposed(monkeypatch, caplog) -> None:
    import ray

    from search import cluster

    calls = []

    class Context:
        dashboard_url = "127.0.0.1:8265"

    monkeypatch.setattr(cluster, "_started_here", False)  # restored after the test
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs) or Context())
    assert SearchOptions().dashboard_host == "127.0.0.1"
    with caplog.at_level(logging.WARNING, logger="search.cluster"):
        cluster.start(SearchOptions())
        assert calls[-1]["dashboard_host"] == "127.0.0.1" and not caplog.records
        cluster.start(SearchOptions(dashboard_host="0.0.0.0"))
    assert calls[-1]["dashboard_host"] == "0.0.0.0"
    assert "the Ray dashboard will listen on 0.0.0.0: anyone who can reach it can run code" in caplog.text
    cluster.stop()  # puts back Ray's node-address mode that start() set for a loopback-only instance


class Payload:
    """Unpickling this would create a file: the proof that a checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_safe_checkpoints_refuse_pickled_objects(tmp_path) -> None:
    from ecg.models import create_model
    from ecg.train import load_checkpoint, save_checkpoint
    from search.exports import TrialRecord
    from search.winners import CheckpointUnusable, load_winner
    from ecg.synthetic import generate

    model_options = {"version": "v3", "width": 4, "width_1d": 16, "blocks_2d": 1, "blocks_1d": 4, "stem_kernel": 15}
    model = create_model("ecgnet", n_leads=8, n_classes=26, length=2500, **model_options)
    directory = save_checkpoint({"model": model.state_dict(), "meta": {"epoch": 1}}, tmp_path / "ckpt")
    marker = tmp_path / "code_ran"
    # A training_state.pt that carries an arbitrary object, as a tampered or foreign checkpoint could.
    torch.save({"optimizer": Payload(marker)}, directory / "training_state.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(directory)
    record = TrialRecord("evil", 1, "TERMINATED", {"family": "ecgnet", **{f"model/{k}": v
                                                                          for k, v in model_options.items()}},
                         pd.DataFrame({"epoch": [1]}), checkpoint=directory)
    with pytest.raises(CheckpointUnusable, match="of trial evil is unusable: UnpicklingError"):
        load_winner(record, generate(4, seed=0, fs=250, length=2500))
    assert not marker.exists()


def test_safe_paths_are_quoted_and_never_run(tmp_path, monkeypatch, capsys) -> None:
    import importlib.util

    weird = tmp_path / "run; rm -rf ~ $(touch PWNED) `touch PWNED2`"
    command = resume_command(weird)
    assert shlex.split(command) == ["python", "launch.py", "--resume", str(weird)]
    # A --resume path with shell syntax is a path: refused as "not a run folder", nothing is executed.
    spec = importlib.util.spec_from_file_location("launch", Path(__file__).resolve().parents[2] / "launch.py")
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    monkeypatch.chdir(tmp_path)
    assert launch.main(["--resume", str(weird)]) == 2
    assert f"--resume: {weird}: no such folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("PWNED*"))


def test_the_fault_hook_gives_each_trial_its_own_fault(monkeypatch) -> None:
    from search.faults import FaultInjector, configured_faults

    monkeypatch.setenv(FAULT_ENV, FAULTS)
    specs = configured_faults()
    assert [s.kind for s in specs] == ["raise", "raise", "nan", "oom", "corrupt"]
    picked = {n: FaultInjector(specs, n, folder=None).spec for n in range(NUM_SAMPLES + 1)}  # numbers from 0
    assert (picked[RETRIED].kind, picked[RETRIED].epoch, picked[RETRIED].times) == ("raise", 2, 1)
    assert (picked[KEEPS_FAILING].kind, picked[KEEPS_FAILING].times) == ("raise", None)
    assert picked[NAN].kind == "nan" and picked[OOM].kind == "oom"
    assert [picked[n].kind for n in CORRUPT] == ["corrupt"] * len(CORRUPT)
    assert picked[NUM_SAMPLES] is None  # a trial no fault names
    monkeypatch.delenv(FAULT_ENV)
    assert configured_faults() == []



def test_hold_waits_until_n_trials_of_the_run_arrive_and_never_forever(tmp_path, monkeypatch) -> None:
    import threading

    import pyarrow.fs

    from search import faults
    from search.faults import FaultInjector, FaultSpec
    from search.trial_failures import TrialFolder

    spec = FaultSpec.parse("hold@1;n=2")
    assert (spec.kind, spec.epoch, spec.n) == ("hold", 1, 2)
    local = pyarrow.fs.LocalFileSystem()
    first, second = (FaultInjector([spec], n, TrialFolder(local, str(tmp_path / "exp" / f"trial_{n}"))) for n in (1, 2))
    released = threading.Event()
    waiting = threading.Thread(target=lambda: (first.at_epoch_end(1), released.set()))
    waiting.start()
    assert not released.wait(1.0)  # alone, the first trial waits
    second.at_epoch_end(1)  # the second arrives: both go on
    assert released.wait(5.0)
    waiting.join()
    monkeypatch.setattr(faults, "HOLD_TIMEOUT_S", 0.5)
    lonely = FaultInjector([FaultSpec.parse("hold@1;n=3")], 1, TrialFolder(local, str(tmp_path / "other" / "t")))
    started = time.monotonic()
    lonely.at_epoch_end(1)  # never met: it goes on after the timeout
    assert 0.5 <= time.monotonic() - started < 5

def test_a_search_without_the_hook_does_not_import_it() -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    code = "import sys, search.runner, search.trainable; print('search.faults' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.slow
def test_9_disk_full_mid_search_fails_in_one_line_and_exports_what_finished(tmp_path, cli, ray_cluster) -> None:
    # Trial 1 meets a full disk (the hook raises OSError ENOSPC at its first epoch's end); trial 0 finishes first.
    results = tmp_path / "results"
    proc = cli.launch(*cli.small, "--num-samples", "2", "--max-epochs", "1", "--scheduler", "fifo", "--top-k", "1",
                      "--max-concurrent", "1", "--results-dir", str(results), "--address", ray_cluster.address,
                      env={**ray_cluster.env, FAULT_ENV: "diskfull@1;trials=1"})
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("launch.py: error: the disk is full: trial ") and "No space left on device" in last, last
    run_dir = cli.only_run(results)
    trials = cli.read_csv(run_dir / "trials.csv").set_index("trial_number")
    assert trials.loc[0, "status"] == "TERMINATED"
    assert trials.loc[1, "status"] == "ERROR" and trials.loc[1, "error"].startswith("disk full: [Errno 28]")
    assert trials.loc[1, "failures"] == 1 + MAX_FAILURES  # retries met the marker and failed at once
    assert cli.read_csv(run_dir / "best_configs.csv")["trial_id"].tolist() == [trials.loc[0, "trial_id"]]
    assert len(cli.read_csv(run_dir / "epochs.csv")) == 1
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["failure"].startswith("the disk is full: trial ")
    assert not (run_dir / "test_results.csv").exists()  # no winners' evaluation after a failed search
    report("disk full mid-search", trials.reset_index(), 2)
