"""Shared by the Ray runs of tests/search: the tiny search settings, launching `launch.py` as a user would (in a
subprocess with its own Ray), and `ray start --head` clusters for the runs that join one with `--address`."""
from __future__ import annotations

import contextlib
import importlib.util
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
def ray_head(temp_dir: Path, *, num_cpus: int, num_gpus: int,
             env: dict[str, str] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """`ray start --head --num-cpus N --num-gpus G` as an operator would run it, in its own temp dir and
    ports, with token auth (its own token, passed by environment, never the user's token file) unless `env`
    gives the environment it runs in (a user's shell); yields the address and the environment a driver needs
    to join. Stopped by SIGTERM to `ray start --block`, which takes its processes down with it; anything left
    in its temp dir is then killed by pid (never `ray stop`, which would stop every Ray on the machine)."""
    env = env if env is not None else {
        **os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0"}
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

    @staticmethod
    def env(**extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0", **extra}

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
def cli() -> SearchCLI:
    return SearchCLI()


@dataclass(frozen=True)
class RayCluster:
    """A running `ray start --head` cluster: its address and the environment a driver needs to join it."""

    address: str
    env: dict[str, str]


@pytest.fixture(scope="session", name="ray_head")
def ray_head_fixture():
    """`ray_head(temp_dir, num_cpus=..., num_gpus=...)`, for tests that start a cluster of their own."""
    return ray_head


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One `ray start --head` with this machine's CPUs and no GPU, shared by the session's runs that join it
    with `--address` (a cluster's start is a fixed cost each local run pays again). The runs that must start
    Ray the way a user does (no `--address`) do not use it."""
    temp_dir = Path(f"/tmp/ecg-shr-{secrets.token_hex(3)}")  # short: Ray's socket paths must fit in 107 bytes
    with ray_head(temp_dir, num_cpus=len(os.sched_getaffinity(0)), num_gpus=0) as (address, env):
        yield RayCluster(address, {**env, "RAY_DEDUP_LOGS": "0"})
