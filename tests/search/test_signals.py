"""SIGTERM and SIGHUP stop a search like Ctrl-C (search/signals.py): forwarded as SIGINT, remembered for the exit
code, bounded by a deadline; and the Ray internals the session trick relies on, pinned. The stops through
launch.py with a real search: test_faults.py, fault 5."""
from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.signals import StopSignals

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_forwarded_signal_interrupts_like_ctrl_c_and_names_itself(sig, code) -> None:
    with StopSignals(deadline_s=60) as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler runs at the next bytecode: never gets here
        assert stop.received == sig and stop.name() == signal.Signals(sig).name and stop.exit_code() == code
    assert signal.getsignal(sig) in (signal.SIG_DFL, signal.Handlers.SIG_DFL)  # put back as it was


def test_ctrl_c_itself_is_130() -> None:
    stop = StopSignals()
    assert (stop.name(), stop.exit_code()) == ("SIGINT", 130)


STUCK = """
import signal, sys, time
from pathlib import Path
from search.signals import StopSignals
stop = StopSignals(deadline_s=1.0)
stop.install()
stop.on_deadline(lambda: Path(sys.argv[1]).write_text("written at the deadline"))
signal.signal(signal.SIGINT, lambda *args: None)  # a stop that hangs: Ray Tune's handler takes it, nothing ends
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def test_a_stop_that_hangs_ends_at_the_deadline_after_writing_what_finished(tmp_path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", STUCK, str(marker)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    signalled = time.time()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert 0.9 < time.time() - signalled < 20  # the deadline, not the test's timeout
    assert marker.read_text() == "written at the deadline"


def test_the_ray_internals_the_own_session_start_relies_on_are_there() -> None:
    """search.signals.ray_processes_in_own_session swaps `ray._private.services.ConsolePopen` while Ray starts:
    if a Ray release renames it or starts its processes otherwise, this fails (and the group-signal stop with it)."""
    from ray._private import services

    assert issubclass(services.ConsolePopen, subprocess.Popen), "Ray no longer has services.ConsolePopen"
    assert "ConsolePopen(" in inspect.getsource(services.start_ray_process), \
        "Ray's start_ray_process no longer starts its processes with ConsolePopen: update search/signals.py"


def test_ray_processes_start_in_their_own_session() -> None:
    from ray._private import services

    from search.signals import ray_processes_in_own_session

    with ray_processes_in_own_session():
        child = services.ConsolePopen([sys.executable, "-c", "import os; print(os.getsid(0))"],
                                      stdout=subprocess.PIPE, text=True)
        session = int(child.communicate(timeout=60)[0])
    assert session == child.pid != os.getsid(0)  # a session of its own: a signal to ours does not reach it
    assert services.ConsolePopen.__name__ == "ConsolePopen"  # put back
