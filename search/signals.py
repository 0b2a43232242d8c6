"""SIGTERM and SIGHUP stop a search the way Ctrl-C does.

Schedulers (SLURM, Kubernetes, `docker stop`, `timeout`) stop a job with SIGTERM, and a closing terminal
sends SIGHUP. Once Ray is up, its core worker's handler would abort the driver on either (exit 134, a native
stack dump), leaving no CSVs and run.json `running`. `StopSignals` turns each into SIGINT instead: inside
`Tuner.fit` Ray Tune's own SIGINT handler then ends the search gracefully (a last experiment snapshot, the
trials stopped), and anywhere else Python raises KeyboardInterrupt. The runner writes what finished either
way; the signal received decides the exit code (128 + its number: 130 for SIGINT, 143 for SIGTERM, 129 for
SIGHUP), as a shell reports a process a signal ended.

A scheduler that signals every process of the job (SLURM does; so does a signal to the process group) also
stops Ray's own processes, and Ray Tune's graceful stop can then wait on them without end. So a forwarded
signal also sets a deadline: `deadline_s` later, if the process is still alive, the action registered with
`on_deadline` (the runner's: write what finished from the files on disk) runs in a watchdog thread and the
process exits with the signal's code. A scheduler's own kill (`SIGKILL` after a grace period, often 10 s or
more) comes after that.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Iterator

FORWARDED = (signal.SIGTERM, signal.SIGHUP)
DEADLINE_S = 6.0


class StopSignals:
    """While active, SIGTERM and SIGHUP are forwarded as SIGINT and remembered (`received`).

    `install()` must run again after Ray starts in this process: Ray installs its own SIGTERM handler then.
    Handlers can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self, deadline_s: float = DEADLINE_S) -> None:
        self.received: int | None = None
        self.deadline_s = deadline_s
        self._previous: dict[int, Any] = {}
        self._on_deadline: Callable[[], None] | None = None

    def on_deadline(self, action: Callable[[], None] | None) -> None:
        """What the watchdog does before it ends the process (None: nothing)."""
        self._on_deadline = action

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in FORWARDED:
            previous = signal.signal(sig, self._forward)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def restore_sigint(self) -> None:
        """Python's own SIGINT handler (KeyboardInterrupt) again, after Ray Tune replaced it."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = signum
        if first:
            threading.Thread(target=self._watchdog, name="stop-deadline", daemon=True).start()
        signal.raise_signal(signal.SIGINT)

    def _watchdog(self) -> None:
        time.sleep(self.deadline_s)
        try:
            if self._on_deadline is not None:
                self._on_deadline()
        except BaseException as err:  # the exit below must happen whatever the action met
            print(f"warning: could not finish writing the stopped search: {type(err).__name__}: {err}",
                  file=sys.stderr)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(self.exit_code())

    def __enter__(self) -> "StopSignals":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def name(self) -> str:
        """The signal that stopped the search: SIGTERM or SIGHUP when one was forwarded, else SIGINT."""
        return signal.Signals(self.received or signal.SIGINT).name

    def exit_code(self) -> int:
        return 128 + int(self.received or signal.SIGINT)


@contextlib.contextmanager
def starting_ray() -> Iterator[None]:
    """Around `ray.init`: Ray's processes start in a session of their own, and the stop handlers stay ours.

    - A signal to the driver's process group (`kill -TERM -PGID`, `timeout`, a closing terminal's SIGHUP) would
      otherwise reach Ray's GCS, raylet and dashboard too: they die at once, and the driver's core worker, losing
      its raylet, ends the driver before it can write anything. In their own session only the driver gets the
      signal, and it stops them in order. They still end with the driver: Ray starts them with the kernel's
      parent-death signal (fate sharing).
    - `ray.init` first sets a SIGTERM handler of its own (`sys.exit(15)`, which can be raised where Python only
      prints "Exception ignored" and goes on): it is left out, so a SIGTERM while Ray starts stops the search
      like one at any other time. The core worker's native handler, set later inside `ray.init`, is replaced
      by `StopSignals.install()` as soon as `ray.init` returns.
    Ray starts its processes through `ray._private.services.ConsolePopen` and sets its handler with
    `ray._private.utils.set_sigterm_handler`; tests/search/test_ray_internals.py pins both.
    """
    from ray._private import services, utils

    original_popen, original_handler = services.ConsolePopen, utils.set_sigterm_handler

    class _OwnSession(original_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = _OwnSession
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        services.ConsolePopen, utils.set_sigterm_handler = original_popen, original_handler
