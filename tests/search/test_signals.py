"""Ctrl-C, SIGTERM and SIGHUP stop a search the same way (search/signals.py): Ray Tune's graceful stop while it
runs, KeyboardInterrupt elsewhere, remembered for the exit code, bounded by a deadline; Ray's processes in a session of their own (the Ray internals that relies on are pinned
in test_ray_internals.py). The stops through launch.py with a real search: test_faults.py, fault 5."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.signals import StopSignals

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_outside_the_search_interrupts_and_names_itself(sig, code) -> None:
    before = signal.getsignal(sig)  # a worker of pytest-xdist ignores SIGINT; Ray, once started, has SIGTERM
    with StopSignals(deadline_s=60) as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler runs at the next bytecode: never gets here
        assert stop.received == sig and stop.name() == signal.Signals(sig).name and stop.exit_code() == code
    assert signal.getsignal(sig) == before  # put back as it was


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_while_ray_tune_runs_the_first_signal_asks_its_graceful_stop_and_a_second_interrupts(sig,
                                                                                          monkeypatch) -> None:
    monkeypatch.delenv("TUNE_DISABLE_SIGINT_HANDLER", raising=False)
    usr1_before = signal.getsignal(signal.SIGUSR1)
    asked: list[int] = []
    with StopSignals(deadline_s=60) as stop, stop.tune_fit():
        assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"  # Ray Tune leaves SIGINT to us
        signal.signal(signal.SIGUSR1, lambda signum, frame: asked.append(signum))  # what Ray Tune sets in fit
        os.kill(os.getpid(), sig)
        time.sleep(0.2)
        assert asked == [signal.SIGUSR1] and stop.received == sig
        with pytest.raises(KeyboardInterrupt):  # Ray Tune's "press Ctrl-C again to skip"
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert stop.received == sig  # the first one names the stop
    assert "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ
    assert signal.getsignal(signal.SIGUSR1) == usr1_before


def test_a_stop_before_ray_tune_listens_interrupts_instead_of_ending_the_process() -> None:
    with StopSignals(deadline_s=60) as stop, stop.tune_fit():
        with pytest.raises(KeyboardInterrupt):  # SIGUSR1's default action would end the process at once
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        assert stop.received == signal.SIGTERM


def test_nothing_received_is_ctrl_c_130() -> None:
    stop = StopSignals()
    assert (stop.name(), stop.exit_code()) == ("SIGINT", 130)


STUCK = """
import signal, sys, time
from pathlib import Path
from search.signals import StopSignals
stop = StopSignals(deadline_s=1.0)
stop.install()
stop.on_deadline(lambda: Path(sys.argv[1]).write_text("written at the deadline"))
with stop.tune_fit():
    signal.signal(signal.SIGUSR1, lambda *args: None)  # a stop that hangs: Ray Tune takes it, nothing ends
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
"""


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_that_hangs_ends_at_the_deadline_after_writing_what_finished(sig, code, tmp_path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", STUCK, str(marker)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    signalled = time.time()
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == code
    assert 0.9 < time.time() - signalled < 20  # the deadline, not the test's timeout
    assert marker.read_text() == "written at the deadline"


def test_ray_processes_start_in_their_own_session() -> None:
    from ray._private import services

    from ray._private import utils

    from search.signals import starting_ray

    handler = signal.getsignal(signal.SIGTERM)
    with starting_ray():
        utils.set_sigterm_handler(lambda *args: None)  # what ray.init does first: left out
        assert signal.getsignal(signal.SIGTERM) is handler
        child = services.ConsolePopen([sys.executable, "-c", "import os; print(os.getsid(0))"],
                                      stdout=subprocess.PIPE, text=True)
        session = int(child.communicate(timeout=60)[0])
    assert session == child.pid != os.getsid(0)  # a session of its own: a signal to ours does not reach it
    assert services.ConsolePopen.__name__ == "ConsolePopen" and utils.set_sigterm_handler.__name__ == "set_sigterm_handler"
