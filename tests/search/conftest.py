"""Shared by the Ray runs of tests/search (test_search_runs.py, test_faults.py): the tiny search settings and
launching `launch.py` as a user would, in a subprocess with its own Ray."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import optuna
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
# Tiny runs: 120 synthetic records at 250 Hz x 2,500 samples; the small ECGNet trains an epoch in seconds.
SMALL = ("--space", "ecgnet", "--n-records", "120", "--cpus-per-trial", "1", "--seed", "0")
EXPECTED_FILES = frozenset({"trials.csv", "epochs.csv", "best_configs.csv", "test_results.csv", "per_class.csv", "report.html",
                            "split.csv", "run.json", "optuna.db"})


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
        return optuna.load_study(study_name="search", storage=f"sqlite:///{run_dir / 'optuna.db'}").trials

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
