"""Watching a search (README, "Watching a search"): the compact console, the epoch lines in the trials' worker
logs, trial folders (TensorBoard runs) named by id and family, and an Optuna study that explains itself."""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from search import progress
from search.trial_failures import trial_number
from search.progress import SearchProgress, epoch_line, summary
from search.tuner import RAY_TRIAL_ID_ATTR, TRIAL_NUMBER_ATTR, OptunaSearchTellingStops, trial_dirname

ANSI = re.compile(r"\x1b\[")


def fake_trial(trial_id: str, status: str, epoch: int = 0, value: float | None = None, best: float | None = None,
               family: str = "ecgnet") -> SimpleNamespace:
    result = {} if value is None else {"training_iteration": epoch, "val_micro_f1": value,
                                       "best_so_far_val_micro_f1": best if best is not None else value}
    return SimpleNamespace(trial_id=trial_id, status=status, config={"family": family}, last_result=result,
                           run_metadata=SimpleNamespace(num_failures=0), error_file=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    return clock


def reporter(tty: bool, asha: bool = True) -> tuple[SearchProgress, io.StringIO]:
    stream = io.StringIO()
    return SearchProgress("val_micro_f1", "best_so_far_val_micro_f1", "max", 6, asha=asha, stream=stream,
                          tty=tty), stream


def test_status_block_counts_trials_and_shows_each_running_one(clock) -> None:
    callback, _ = reporter(tty=False)
    trials = [fake_trial("aaaa0001", "RUNNING", 3, 0.61, 0.65), fake_trial("aaaa0002", "TERMINATED", 2, 0.40, 0.71),
              fake_trial("aaaa0003", "PENDING", family="gru"), fake_trial("aaaa0004", "RUNNING", family="gru")]
    lines = callback.status(trials, elapsed_s=75).splitlines()
    assert lines[0] == "[01:15] 2 running, 1 pending, 1 terminated; best val_micro_f1 0.7100 (trial aaaa0002)"
    assert lines[1].split() == ["aaaa0001", "ecgnet", "epoch", "3/6", "val_micro_f1", "0.6100", "best", "0.6500"]
    assert lines[2].split() == ["aaaa0004", "gru", "starting"]  # no epoch reported yet
    assert len(lines) == 3  # pending and finished trials are counted, not listed


def test_finished_lines_say_how_each_trial_ended(clock, tmp_path) -> None:
    callback, _ = reporter(tty=False)
    assert callback.finished_line(fake_trial("aaaa0001", "TERMINATED", 2, 0.5, 0.55)) == (
        "trial aaaa0001 ecgnet: 2 epochs, best val_micro_f1 0.5500, stopped by ASHA at epoch 2")
    assert callback.finished_line(fake_trial("aaaa0002", "TERMINATED", 6, 0.7, 0.75, family="gru")) == (
        "trial aaaa0002 gru: 6 epochs, best val_micro_f1 0.7500, complete")
    errored = fake_trial("aaaa0003", "ERROR", 1, 0.1)
    errored.error_file = str(tmp_path / "error.txt")
    Path(errored.error_file).write_text("Failure # 1\nTraceback (most recent call last):\n  ...\n"
                                        "search.trial_failures.TrialFailed: non-finite loss: loss is nan\n")
    assert callback.finished_line(errored, error=True) == (
        "trial aaaa0003 ecgnet: 1 epoch, best val_micro_f1 0.1000, error: search.trial_failures.TrialFailed: "
        "non-finite loss: loss is nan")
    fifo, _ = reporter(tty=False, asha=False)
    assert fifo.finished_line(fake_trial("aaaa0004", "TERMINATED", 4, 0.5)).endswith("stopped early at epoch 4")


def test_a_file_gets_a_status_at_most_every_30_s_and_only_when_it_changed(clock) -> None:
    callback, stream = reporter(tty=False)
    trials = [fake_trial("aaaa0001", "RUNNING", 1, 0.5)]
    callback.on_step_end(0, trials)
    clock.now += progress.STATUS_EVERY_S - 1
    trials[0].last_result.update(training_iteration=2, val_micro_f1=0.6, best_so_far_val_micro_f1=0.6)
    callback.on_step_end(1, trials)  # too soon
    assert stream.getvalue().count("\n") == 2
    clock.now += 1
    callback.on_step_end(2, trials)  # 30 s on, changed: printed
    clock.now += progress.STATUS_EVERY_S
    callback.on_step_end(3, trials)  # 30 s on, unchanged: nothing
    callback.on_trial_complete(4, trials, trials[0])
    text = stream.getvalue()
    assert text.count("epoch 1/6") == 1 and text.count("epoch 2/6") == 1 and len(text.splitlines()) == 5
    assert not ANSI.search(text)


def test_a_terminal_gets_the_status_redrawn_in_place(clock) -> None:
    callback, stream = reporter(tty=True)
    trials = [fake_trial("aaaa0001", "RUNNING", 1, 0.5), fake_trial("aaaa0002", "RUNNING", 1, 0.4)]
    callback.on_step_end(0, trials)
    clock.now += progress.REDRAW_EVERY_S
    callback.on_step_end(1, trials)
    assert stream.getvalue().count("\x1b[3F\x1b[J") == 1  # the 3-line block erased before it is drawn again
    trials[1].status = "TERMINATED"
    callback.on_trial_complete(2, trials, trials[1])
    # The finished line replaces the block, which is drawn again below it; at the end the block goes.
    assert stream.getvalue().endswith("trial aaaa0002 ecgnet: 1 epoch, best val_micro_f1 0.4000, stopped by "
                                      "ASHA at epoch 1\n" + callback._last_text + "\n")
    callback.on_experiment_end(trials)
    assert stream.getvalue().endswith("\x1b[3F\x1b[J")


def test_the_callback_pickles_without_its_stream() -> None:
    import pickle

    callback, _ = reporter(tty=True)
    copy = pickle.loads(pickle.dumps(callback))
    assert copy._stream is None and copy._tty is None and copy.max_epochs == 6


def test_summary_counts_outcomes_and_names_the_chosen_model() -> None:
    import pandas as pd

    trials = pd.DataFrame({"status": ["TERMINATED", "TERMINATED", "TERMINATED", "ERROR"],
                           "stopped_by_asha": [True, True, False, False]})
    info = {"wall_time_s": 3725.0, "chosen_model": {"model": "ensemble_greedy", "thresholds": "val_tuned",
                                                    "trial_id": float("nan")}}
    assert summary(info, trials) == ["search finished in 1:02:05: 4 trials (1 complete, 2 stopped by ASHA, 1 error)",
                                     "chosen model: ensemble_greedy with val_tuned thresholds"]
    info["chosen_model"].update(model="rank1", trial_id="aaaa0001")
    assert summary(info, trials)[1] == "chosen model: rank1 with val_tuned thresholds (trial aaaa0001)"


def test_epoch_line_has_the_id_the_epoch_the_metrics_and_the_best() -> None:
    line = epoch_line("ab12cd34", 3, 6, {"val_micro_f1": 0.61234, "val_loss": 0.5, "lr": 1e-3, "params": 9.0},
                      "val_micro_f1", 0.7)
    assert line == "trial ab12cd34 epoch 3/6: val_micro_f1 0.6123 val_loss 0.5000 | best val_micro_f1 so far 0.7000"


def test_warnings_are_one_line_without_the_source_line() -> None:
    saved = warnings.formatwarning
    try:
        progress.install_warning_format()
        text = warnings.formatwarning("classes AF have fewer than 3 records", UserWarning, "split.py", 47,
                                      "    assignment = make_split(...)")
    finally:
        warnings.formatwarning = saved
    assert text == "warning: classes AF have fewer than 3 records (UserWarning)\n"


def test_watch_lines_give_the_three_views_for_the_run_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(progress, "_token_auth", lambda: True)
    run = tmp_path / "results" / "ecgnet-1"
    lines = progress.watch_lines("http://127.0.0.1:8265", run / "optuna.db", run / "tune", joined=False)
    assert lines[0] == "Ray dashboard: http://127.0.0.1:8265"
    assert "`ray get-auth-token`" in lines[1] and "auth_token" in lines[1]
    assert lines[2:] == ["Optuna study:  optuna-dashboard sqlite:///results/ecgnet-1/optuna.db",
                         "TensorBoard:   tensorboard --logdir results/ecgnet-1/tune"]
    monkeypatch.setattr(progress, "_token_auth", lambda: False)
    assert len(progress.watch_lines(None, run / "optuna.db", run / "tune", joined=True)) == 2


def test_trial_folders_are_named_by_id_number_and_family() -> None:
    trial = SimpleNamespace(trainable_name="train_trial", trial_id="ab12cd34", config={"family": "gru"},
                            experiment_tag="12_family=gru,model/hidden=64,optim/lr=0.0010")
    name = trial_dirname(trial)
    assert name == "train_trial_ab12cd34_12_gru"
    assert trial_number(name, "ab12cd34") == 12 and name.split("_")[2] == "ab12cd34"


def tiny_space(trial: optuna.Trial) -> dict:
    """A define-by-run space for the searcher tests (module level: the searcher is pickled)."""
    trial.suggest_float("optim/lr", 1e-4, 1e-2, log=True)
    return {"family": "ecgnet"}


def make_searcher(storage: str) -> OptunaSearchTellingStops:
    return OptunaSearchTellingStops(space=tiny_space, metric="best_so_far_val_micro_f1", mode="max",
                                    sampler=optuna.samplers.RandomSampler(seed=0), study_name="search",
                                    storage=optuna.storages.RDBStorage(storage), max_epochs=2)


def result(epoch: int, value: float) -> dict:
    return {"training_iteration": epoch, "best_so_far_val_micro_f1": value}


def test_study_names_its_metric_and_records_ray_ids_numbers_and_every_epoch(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(storage)
    for trial_id in ("aaaa0001", "aaaa0002", "aaaa0003"):
        assert searcher.suggest(trial_id) == {"family": "ecgnet"}
    searcher.suggest("aaaa0001")  # asked again for the same trial: still one study trial, numbered once
    searcher.on_trial_result("aaaa0001", result(1, 0.4))
    searcher.on_trial_complete("aaaa0001", result(2, 0.6))  # ran to max_epochs: that result was never passed
    searcher.on_trial_complete("aaaa0002", result(1, 0.3))  # ASHA stopped it at epoch 1
    searcher.on_trial_complete("aaaa0003", error=True)
    study = optuna.load_study(study_name="search", storage=storage)
    assert study.metric_names == ["best_so_far_val_micro_f1"]
    trials = study.trials
    assert [t.user_attrs for t in trials] == [{RAY_TRIAL_ID_ATTR: f"aaaa000{n}", TRIAL_NUMBER_ATTR: n}
                                              for n in (1, 2, 3)]
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL"]
    assert trials[0].intermediate_values == {1: 0.4, 2: 0.6} and trials[0].value == 0.6
    assert trials[1].intermediate_values == {1: 0.3} and trials[1].value == 0.3


def test_a_resumed_searcher_fails_the_study_trials_it_never_owned(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(storage)
    searcher.suggest("aaaa0001")
    searcher.suggest("aaaa0002")
    searcher.on_trial_complete("aaaa0001", result(2, 0.5))
    searcher.save(str(tmp_path / "searcher.pkl"))  # the experiment state --resume restores
    searcher.suggest("aaaa0003")  # proposed after the last snapshot, then the driver was killed
    restored = make_searcher(storage)
    restored.restore(str(tmp_path / "searcher.pkl"))
    states = [t.state.name for t in optuna.load_study(study_name="search", storage=storage).trials]
    assert states == ["COMPLETE", "RUNNING", "FAIL"]  # aaaa0002 goes on (Ray resumes it); aaaa0003 never will
    restored.suggest("aaaa0004")  # the count goes on from the snapshot: Ray's next trial number is 3
    assert optuna.load_study(study_name="search", storage=storage).trials[-1].user_attrs[TRIAL_NUMBER_ATTR] == 3


def short_tmp() -> Path:
    """A short folder for a Ray session: its socket paths must stay under the 107 characters Unix allows."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="r14", dir="/tmp"))


@pytest.mark.slow
def test_a_tiny_search_explains_itself_in_the_study_the_worker_logs_and_a_short_console(tmp_path, cli) -> None:
    import shutil

    ray_tmp = short_tmp()
    try:
        proc = cli.launch(*cli.small, "--num-samples", "2", "--max-epochs", "2", "--grace-period", "1",
                          "--reduction-factor", "2", "--top-k", "1", "--results-dir", str(tmp_path),
                          env=cli.env(RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="token"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_dir = cli.only_run(tmp_path)
        trials = cli.read_csv(run_dir / "trials.csv")
        assert len(trials) == 2

        study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
        assert study.metric_names == ["best_so_far_val_micro_f1"]
        by_ray_id = {t.user_attrs[RAY_TRIAL_ID_ATTR]: t for t in study.trials}
        assert set(by_ray_id) == set(trials["trial_id"])
        for row in trials.itertuples():
            study_trial = by_ray_id[row.trial_id]
            assert study_trial.user_attrs[TRIAL_NUMBER_ATTR] == row.trial_number
            assert study_trial.number == row.optuna_trial_number
            # Every epoch the trial ran is an intermediate value, the last one included.
            assert sorted(study_trial.intermediate_values) == list(range(1, row.epochs_run + 1))
            assert study_trial.state.name == ("PRUNED" if row.stopped_by_asha else "COMPLETE")

        # Trial folders (TensorBoard runs) are named by id, number and family, and hold the event files.
        names = sorted(p.name for p in (run_dir / "tune").glob("train_trial_*"))
        assert names == sorted(f"train_trial_{r.trial_id}_{r.trial_number}_ecgnet" for r in trials.itertuples())
        assert all(list((run_dir / "tune" / name).glob("events.out.tfevents.*")) for name in names)

        # The worker logs of the local Ray hold one line per epoch of each trial.
        logs = "".join(p.read_text(errors="replace") for p in ray_tmp.glob("ray/session_*/logs/worker-*.out"))
        for row in trials.itertuples():
            for epoch in range(1, row.epochs_run + 1):
                assert re.search(rf"^trial {row.trial_id} epoch {epoch}/2: val_micro_f1 \d\.\d{{4}} .*"
                                 rf"\| best val_micro_f1 so far \d\.\d{{4}}$", logs, re.M), (row.trial_id, epoch)

        out = proc.stdout + proc.stderr
        assert not ANSI.search(out)  # not a terminal: no ANSI codes
        lines = out.splitlines()
        assert f"Optuna study:  optuna-dashboard sqlite:///{run_dir / 'optuna.db'}" in lines
        assert f"TensorBoard:   tensorboard --logdir {run_dir / 'tune'}" in lines
        assert any("`ray get-auth-token`" in line for line in lines)
        for row in trials.itertuples():
            ended = f"stopped by ASHA at epoch {row.epochs_run}" if row.stopped_by_asha else "complete"
            assert sum(line.startswith(f"trial {row.trial_id} ecgnet: {row.epochs_run} epoch") and
                       line.endswith(ended) for line in lines) == 1
        assert re.search(r"^search finished in \d\d:\d\d: 2 trials \(", out, re.M)
        assert re.search(r"^chosen model: \S+ with \S+ thresholds", out, re.M)
        assert not any(line.startswith("  ") and "make_split" in line for line in lines)  # no echoed source
        # Header (7), a status or two, 2 trial lines, the test table (about 8), summary (3): not Ray's ~65 a trial.
        assert len(lines) <= 40, out
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(ray: str, ray_tmp: Path, env: dict[str, str], dashboard_port: int):
    """`ray start --head --block` with the dashboard, in its own temp dir and ports; retried, since a loaded
    machine can miss Ray's fixed start-up windows (as tests/search/test_gpu_packing.py's ray_head does)."""
    import subprocess
    import time

    log = ray_tmp / "ray_start.log"
    for _ in range(3):
        head = subprocess.Popen([ray, "start", "--head", "--block", f"--temp-dir={ray_tmp}", f"--port={free_port()}",
                                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                                 # Every port its own: Ray's fixed defaults (agent 52365, client 10001, ...)
                                 # may be taken by another Ray on this machine.
                                 f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                                 f"--dashboard-agent-grpc-port={free_port()}", f"--metrics-export-port={free_port()}",
                                 f"--runtime-env-agent-port={free_port()}", "--num-cpus=2",
                                 "--include-dashboard=true", "--disable-usage-stats"],
                                env=env, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and head.poll() is None and "block forever" not in log.read_text():
            time.sleep(1)
        if head.poll() is None and "block forever" in log.read_text():
            return head
        stop_cluster(head, ray_tmp)
    raise AssertionError(f"ray start failed:\n{log.read_text()[-3000:]}")


def stop_cluster(head, ray_tmp: Path) -> None:
    """Stop the cluster this test started, and nothing else: `ray start --block` stops the processes it
    started on SIGTERM; any process left that names this cluster's temp folder is killed by its pid."""
    import os
    import signal
    import subprocess

    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(ray_tmp) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


@pytest.mark.slow
def test_a_search_submitted_as_a_ray_job_shows_its_driver_output_in_the_job_logs(tmp_path, cli) -> None:
    """README, "As a Ray job": `ray job submit -- python launch.py --address auto ...` on a local cluster; the
    job's logs (what the dashboard's Jobs page shows) hold the search's own lines."""
    import secrets
    import shutil
    import subprocess
    import sys
    import time

    ray = str(Path(sys.executable).parent / "ray")
    ray_tmp = short_tmp()
    dashboard = f"http://127.0.0.1:{free_port()}"
    # Token auth with a token of its own (by environment, never the user's token file).
    env = cli.env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    head = start_cluster(ray, ray_tmp, env, int(dashboard.rsplit(":", 1)[1]))
    try:
        deadline = time.monotonic() + 180
        while subprocess.run([ray, "job", "list", "--address", dashboard], env=env, capture_output=True).returncode:
            assert time.monotonic() < deadline and head.poll() is None, "the local Ray cluster did not start"
            time.sleep(3)
        deadline = time.monotonic() + 300
        while True:  # the head's job agent starts a little after its dashboard answers
            submit = subprocess.run(
                [ray, "job", "submit", "--address", dashboard, "--submission-id", "watching-14", "--",
                 sys.executable, str(cli.root / "launch.py"), "--address", "auto", *cli.small, "--num-samples", "1",
                 "--max-epochs", "1", "--top-k", "1", "--results-dir", str(tmp_path)],
                env=env, capture_output=True, text=True, timeout=900)
            if "No available agent" not in submit.stderr or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert submit.returncode == 0, (submit.stdout + submit.stderr)[-3000:]
        status = subprocess.run([ray, "job", "status", "--address", dashboard, "watching-14"], env=env,
                                capture_output=True, text=True)
        assert "Job 'watching-14' succeeded" in status.stdout
        logs = subprocess.run([ray, "job", "logs", "--address", dashboard, "watching-14"], env=env,
                              capture_output=True, text=True, timeout=60).stdout
        run_dir = cli.only_run(tmp_path)
        trial_id = cli.read_csv(run_dir / "trials.csv")["trial_id"].iloc[0]
        assert f"run folder: {run_dir}" in logs
        assert f"TensorBoard:   tensorboard --logdir {run_dir / 'tune'}" in logs
        assert f"trial {trial_id} ecgnet: 1 epoch, best val_micro_f1 " in logs
        assert re.search(r"^search finished in \d\d:\d\d: 1 trials \(1 complete\)$", logs, re.M), logs
    finally:
        stop_cluster(head, ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
