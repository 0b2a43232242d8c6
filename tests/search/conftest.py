"""Shared by the Ray runs of tests/search: the tiny search settings, launching `launch.py` as a user would (in a
subprocess with its own Ray, in the session's own HOME: `user_env` in tests/conftest.py), `ray start --head`
clusters for the runs that join one with `--address`, and the one finished search (`finished_run`) that the
tests which only read a finished run folder share."""
from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import optuna
import pandas as pd
import pytest

from tests.conftest import session_root

ROOT = Path(__file__).resolve().parents[2]
# Tiny runs: 120 synthetic records at 250 Hz x 2,500 samples; the small ECGNet trains an epoch in seconds.
SMALL = ("--space", "ecgnet", "--n-records", "120", "--cpus-per-trial", "1", "--seed", "0")
EXPECTED_FILES = frozenset({"trials.csv", "epochs.csv", "best_configs.csv", "test_results.csv", "per_class.csv",
                            "test_probabilities.csv", "models.json", "report.html", "split.csv", "run.json",
                            "optuna.db"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _processes_mentioning(text: str) -> list[int]:
    """Pids of this user's processes whose command line contains `text` (a private temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text in (entry / "cmdline").read_bytes().decode(errors="replace") and entry.stat().st_uid == os.getuid():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@contextlib.contextmanager
def ray_head(temp_dir: Path, *, num_cpus: int, num_gpus: int, env: dict[str, str],
             own_token: bool = True) -> Iterator[tuple[str, dict[str, str]]]:
    """`ray start --head --num-cpus N --num-gpus G --include-dashboard=false` as an operator would run it, in
    the environment `env`, in its own temp dir and ports, with token auth by a token of its own passed in the
    environment (`own_token`; else as `env` has it: a user's shell and token file); yields the address and the
    environment a driver needs to join. Stopped by SIGTERM to `ray start --block`, which takes its processes
    down with it; anything left in its temp dir is then killed by pid (never `ray stop`, which would stop
    every Ray on the machine)."""
    if own_token:
        env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    temp_dir.mkdir(parents=True, exist_ok=True)
    proc, port, log = None, 0, temp_dir / "ray_start.log"
    try:
        for _ in range(3):  # a loaded machine can miss Ray's fixed 30 s raylet start-up window
            port = free_port()
            command = ["ray", "start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}",
                       f"--num-gpus={num_gpus}", f"--temp-dir={temp_dir}", f"--dashboard-port={free_port()}",
                       f"--ray-client-server-port={free_port()}", "--include-dashboard=false"]
            proc = subprocess.Popen(command, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                    start_new_session=True)
            deadline = time.time() + 240
            while time.time() < deadline and proc.poll() is None and "block forever" not in log.read_text():
                time.sleep(1)
            if proc.poll() is None and "block forever" in log.read_text():
                break
            proc.wait(timeout=60) if proc.poll() is None else None
        assert proc is not None and proc.poll() is None, f"ray start failed:\n{log.read_text()[-3000:]}"
        yield f"127.0.0.1:{port}", env
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        for pid in _processes_mentioning(str(temp_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


class SearchCLI:
    """`launch.py` in a subprocess, and what the tests read back from a run folder."""

    root = ROOT
    small = SMALL
    expected_files = EXPECTED_FILES

    def __init__(self, user_env: dict[str, str]) -> None:
        self._user_env = user_env

    def env(self, **extra: str) -> dict[str, str]:
        """The session's user environment (tests/conftest.py, `user_env`) with `extra`; Ray's log
        deduplication off, so that each trial's lines reach its worker log."""
        return {**self._user_env, "RAY_DEDUP_LOGS": "0", **extra}

    def launch(self, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=ROOT, env=env or self.env(),
                              text=True, capture_output=True, timeout=600, **kwargs)

    def start(self, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        """launch.py in a new session (its own process group, so a test can signal the driver and the local
        Ray it starts together), with SIGINT at its default: a shell that started pytest in the background
        may have ignored SIGINT, and an ignored signal stays ignored across exec."""
        return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args], cwd=ROOT, env=env or self.env(),
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)

    @staticmethod
    def read_csv(path: Path) -> pd.DataFrame:
        """A CSV of the run with trial ids as text: Ray's 8 hex digits may look like a number ("52012e84")."""
        return pd.read_csv(path, dtype={"trial_id": str})

    @staticmethod
    def only_run(results: Path) -> Path:
        runs = list(results.iterdir())
        assert len(runs) == 1, runs
        return runs[0]

    @staticmethod
    def study_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
        return optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}").trials

    @staticmethod
    def finished_trials(run_dir: Path, max_epochs: int) -> set[str]:
        """Ids of the trials whose progress.csv already reached `max_epochs` (read while the run goes on)."""
        done = set()
        for progress in (run_dir / "tune").glob("train_trial_*/progress.csv"):
            try:
                frame = SearchCLI.read_csv(progress)
            except (pd.errors.EmptyDataError, pd.errors.ParserError):
                continue
            if len(frame) and "epoch" in frame and frame["epoch"].max() >= max_epochs:
                done.add(str(frame["trial_id"].iloc[0]))
        return done

    def kill_after_a_trial_finishes(self, *args: str, results: Path, max_epochs: int,
                                    timeout_s: float = 400) -> tuple[Path, set[str]]:
        """Start `launch.py *args` and SIGKILL it with its local Ray (one process group, as a machine crash
        would) once a trial has reached `max_epochs`; the run folder and the ids of the trials finished."""
        log = results.parent / f"{results.name}-driver.log"  # beside the results folder, which holds only runs
        with log.open("w") as out:
            driver = self.start(*args, stdout=out, stderr=subprocess.STDOUT)
        deadline, finished = time.time() + timeout_s, set()
        try:
            while time.time() < deadline and driver.poll() is None:
                time.sleep(1)
                runs = list(results.iterdir())
                if runs and (runs[0] / "tune").exists():
                    finished = self.finished_trials(runs[0], max_epochs)
                    if finished:
                        time.sleep(2)  # let the experiment state catch up with the finished trial
                        break
        finally:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        assert finished, f"no trial finished before the deadline; the driver said:\n{log.read_text()[-3000:]}"
        return self.only_run(results), finished


@pytest.fixture(scope="session")
def launch() -> ModuleType:
    """launch.py as a module, for tests that call its `main` in-process (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("launch", ROOT / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cli(user_env: dict[str, str]) -> SearchCLI:
    return SearchCLI(user_env)


@dataclass(frozen=True)
class RayCluster:
    """A running `ray start --head` cluster: its address and the environment a driver needs to join it."""

    address: str
    env: dict[str, str]


@pytest.fixture(scope="session", name="ray_head")
def ray_head_fixture(cli: SearchCLI):
    """`ray_head(temp_dir, num_cpus=..., num_gpus=...)` in the session's user environment, for tests that
    start a cluster of their own."""
    return functools.partial(ray_head, env=cli.env())


@pytest.fixture(scope="session")
def ray_cluster(cli: SearchCLI) -> Iterator[RayCluster]:
    """One `ray start --head` with this machine's CPUs and no GPU, shared by the session's runs (of this
    pytest-xdist worker) that join it with `--address`: a cluster's start is a fixed cost each local run pays
    again. The runs that must start Ray the way a user does (no `--address`) do not use it."""
    temp_dir = Path(f"/tmp/ecg-shr-{secrets.token_hex(3)}")  # short: Ray's socket paths must fit in 107 bytes
    with ray_head(temp_dir, num_cpus=len(os.sched_getaffinity(0)), num_gpus=0, env=cli.env()) as (address, env):
        yield RayCluster(address, env)


# --- The shared finished search -------------------------------------------------------------------------------
# A tiny ECGNet search through launch.py with a local Ray of its own, as a user starts one: six trials one at a
# time, so that asynchronous ASHA (grace period 1, reduction factor 3) stops some at epoch 1 in an order the
# tests can replay; the top two are evaluated. The tests that only read a finished run folder (every export,
# the console, the study, TensorBoard's events, the worker logs, the sockets Ray listened on, resuming copies
# of it) read this one run instead of each starting their own.
FINISHED_ARGS = (*SMALL, "--num-samples", "6", "--max-epochs", "3", "--grace-period", "1", "--reduction-factor", "3",
                 "--top-k", "2", "--max-concurrent", "1")
LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


@dataclass(frozen=True)
class FinishedRun:
    """The shared search: its run folder, what launch.py printed, Ray's worker logs (copied from its session
    folder) and the sockets its processes listened on while trials ran, with those of them that answered a
    connection to this machine's network address (None: the machine has no such address)."""

    run_dir: Path
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    worker_logs: Path
    sockets: frozenset[tuple[str, str, int]]
    answered: frozenset[tuple[str, str, int]]
    outside_ip: str | None

    def option(self, name: str) -> str:
        return self.args[self.args.index(name) + 1]


def outside_ip() -> str | None:
    """This machine's address on its network (not loopback), to knock on the ports from "outside"."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # no packet is sent; the kernel picks the outgoing interface
            ip = udp.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def answers(ip: str, port: int) -> bool:
    with socket.socket() as knock:
        knock.settimeout(1)
        return knock.connect_ex((ip, port)) == 0


def held_elsewhere(port: int, pids: set[int]) -> bool:
    """Whether a process outside `pids` listens on `port` on a non-loopback address: a knock there is answered by
    it (another test's `ray start --head`, say), not by the search."""
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil

    return any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid not in pids
               and conn.laddr.ip not in LOOPBACK for conn in psutil.net_connections(kind="inet"))


def process_tree(pid: int) -> set[int]:
    import ray  # noqa: F401
    import psutil

    try:
        root = psutil.Process(pid)
        return {pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return {pid}


def listening(pid: int) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of `pid` and its descendants."""
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil

    found = set()
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in processes:
        try:
            name = process.name()
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((name, conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _run_and_watch(cli: SearchCLI, folder: Path) -> dict:
    """Run the shared search into `folder`, listing the sockets its Ray listens on while it runs; what the
    tests read back, as JSON-ready values."""
    ray_tmp = Path(f"/tmp/ecg-fin-{secrets.token_hex(3)}")  # short: Ray's socket paths must fit in 107 bytes
    results, logs = folder / "results", (folder / "stdout.txt", folder / "stderr.txt")
    ip = outside_ip()
    sockets: set[tuple[str, str, int]] = set()
    answered: set[tuple[str, str, int]] = set()
    try:
        with open(logs[0], "w") as stdout, open(logs[1], "w") as stderr:
            driver = cli.start(*FINISHED_ARGS, "--results-dir", str(results), env=cli.env(RAY_TMPDIR=str(ray_tmp)),
                               stdout=stdout, stderr=stderr)
        try:
            deadline = time.time() + 600
            while driver.poll() is None and time.time() < deadline:
                new = listening(driver.pid) - sockets
                sockets |= new
                answered |= {s for s in new if ip is not None and answers(ip, s[2])
                             and not held_elsewhere(s[2], process_tree(driver.pid))}
                time.sleep(0.5)
            driver.wait(timeout=max(1.0, deadline - time.time()))
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
        # The trials' worker logs (what the dashboard shows of each trial actor), kept beside the run.
        worker_logs = folder / "worker_logs"
        worker_logs.mkdir()
        for session in {p.resolve() for p in ray_tmp.glob("ray/session_*") if (p / "logs").is_dir()}:
            for log in session.glob("logs/worker-*"):
                shutil.copy(log, worker_logs / f"{session.name}-{log.name}")
    finally:
        for pid in _processes_mentioning(str(ray_tmp)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    runs = list(results.iterdir()) if results.is_dir() else []
    return {"run_dir": str(runs[0]) if len(runs) == 1 else str(results), "args": list(FINISHED_ARGS),
            "returncode": driver.returncode, "stdout": logs[0].read_text(), "stderr": logs[1].read_text(),
            "worker_logs": str(worker_logs), "sockets": sorted(sockets), "answered": sorted(answered),
            "outside_ip": ip}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, cli: SearchCLI) -> FinishedRun:
    """The shared finished search (FINISHED_ARGS), run once per test session: the first pytest-xdist worker
    that asks runs it while holding a lock; another that asks meanwhile waits for it and reads what it wrote.
    Tests read the folder and never change it (those that resume work on copies)."""
    folder = session_root(tmp_path_factory) / "finished-run"
    folder.mkdir(exist_ok=True)
    record = folder / "finished.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            record.write_text(json.dumps(_run_and_watch(cli, folder)))
    saved = json.loads(record.read_text())
    run = FinishedRun(run_dir=Path(saved["run_dir"]), args=tuple(saved["args"]), returncode=saved["returncode"],
                      stdout=saved["stdout"], stderr=saved["stderr"], worker_logs=Path(saved["worker_logs"]),
                      sockets=frozenset(map(tuple, saved["sockets"])),
                      answered=frozenset(map(tuple, saved["answered"])), outside_ip=saved["outside_ip"])
    assert run.returncode == 0, run.stderr[-3000:]
    return run
