"""search.cluster.start_while: Ray starts in the calling thread while the driver's preparation runs in another;
whichever fails, the other has finished before the error reaches the caller (so a cleanup finds neither running).

`start` is replaced by a stand-in here (no Ray): what Ray itself does at start is covered by every search test.
Also the GPU count that a local start resolves its defaults with, before Ray.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from search import cluster
from search.options import SearchOptions


def test_start_while_returns_the_work_and_the_start_and_runs_them_at_once(monkeypatch) -> None:
    threads, both_running = {}, threading.Barrier(2, timeout=30)

    def start(options: SearchOptions, job_name: str | None = None) -> str:
        threads["start"], threads["job"] = threading.current_thread(), job_name
        both_running.wait()  # returns only while the other runs too: side by side, not one after the other
        return "http://127.0.0.1:8265"

    def work() -> str:
        threads["work"] = threading.current_thread()
        both_running.wait()
        return "split"

    monkeypatch.setattr(cluster, "start", start)
    result, dashboard, seconds = cluster.start_while(SearchOptions(), work, job_name="gru-20261206-120000")
    assert (result, dashboard, threads["job"]) == ("split", "http://127.0.0.1:8265", "gru-20261206-120000")
    assert threads["start"] is threading.main_thread() and threads["work"] is not threading.main_thread()
    assert seconds >= 0


def test_a_failed_preparation_is_raised_once_ray_has_started(monkeypatch) -> None:
    started = []
    monkeypatch.setattr(cluster, "start", lambda options, job_name=None: (time.sleep(0.2), started.append(True))[0])

    def work() -> None:
        raise ValueError("bad split")

    with pytest.raises(ValueError, match="bad split"):
        cluster.start_while(SearchOptions(), work)
    assert started == [True]  # the start finished first: the caller's cluster.stop() finds it


def test_a_failed_start_is_raised_once_the_preparation_has_finished(monkeypatch) -> None:
    finished = []

    def start(options: SearchOptions, job_name: str | None = None) -> None:
        raise RuntimeError("The current node timed out during startup")

    def work() -> None:
        time.sleep(0.2)
        finished.append(True)

    monkeypatch.setattr(cluster, "start", start)
    with pytest.raises(RuntimeError, match="timed out"):
        cluster.start_while(SearchOptions(), work)
    assert finished == [True]  # the split is written before the caller removes the run folder


def test_when_both_fail_the_preparation_error_is_the_one_raised(monkeypatch) -> None:
    monkeypatch.setattr(cluster, "start", lambda options, job_name=None: (_ for _ in ()).throw(RuntimeError("ray")))

    def work() -> None:
        raise ValueError("bad split")

    with pytest.raises(ValueError, match="bad split"):
        cluster.start_while(SearchOptions(), work)


def test_without_a_gpu_drivers_device_node_the_gpu_count_is_0_without_importing_torch(tmp_path, monkeypatch) -> None:
    import subprocess

    from search import environment

    root = Path(__file__).resolve().parents[2]
    code = ("import sys; from search import environment; environment.GPU_DEVICE_NODES = ({!r},); "
            "print(environment.local_gpu_count(), 'torch' in sys.modules)")
    absent = subprocess.run([sys.executable, "-c", code.format(str(tmp_path / "nvidiactl"))], cwd=root,
                            capture_output=True, text=True, check=True).stdout.split()
    (tmp_path / "nvidiactl").touch()  # a driver's node: torch answers (0 here: a CPU build, or no device)
    present = subprocess.run([sys.executable, "-c", code.format(str(tmp_path / "nvidiactl"))], cwd=root,
                             capture_output=True, text=True, check=True).stdout.split()
    import torch

    assert absent == ["0", "False"] and present == [str(torch.cuda.device_count()), "True"]
    if sys.platform.startswith("linux") and not any(Path(node).exists() for node in environment.GPU_DEVICE_NODES):
        assert environment.local_gpu_count() == torch.cuda.device_count() == 0
