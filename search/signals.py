"""Ctrl-C, SIGTERM and SIGHUP stop a search the same way, within a deadline.

Schedulers (SLURM, Kubernetes, `docker stop`, `timeout`) stop a job with SIGTERM, and a closing terminal
sends SIGHUP. Once Ray is up, its core worker's handler would abort the driver on either (exit 134, a native
stack dump), leaving no CSVs and run.json `running`. `StopSignals` takes all three: while Ray Tune runs the
search (`tune_fit`) the first one asks Ray Tune for its graceful stop (a last experiment snapshot, the trials
stopped) through SIGUSR1, the signal Ray Tune always listens on, with its own SIGINT handler turned off
(`TUNE_DISABLE_SIGINT_HANDLER`); anywhere else, or a second time, Python raises KeyboardInterrupt. The runner
writes what finished either way; the signal received decides the exit code (128 + its number: 130 for SIGINT,
143 for SIGTERM, 129 for SIGHUP), as a shell reports a process a signal ended.

Ray Tune's graceful stop can wait on Ray's processes without end (a scheduler that signals the whole job stops
them too; a loaded machine is slow to answer). So the first signal also sets a deadline: `deadline_s` later, if
the process is still alive, the action registered with `on_deadline` (the runner's: write what finished from
the files on disk, if the main thread has not) runs in a watchdog thread and the process exits with the
signal's code. A scheduler's own kill (`SIGKILL` after a grace period, often 10 s or more) comes after that.
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

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TUNE_STOP = signal.SIGUSR1  # Ray Tune's graceful stop (ray.tune.tune._setup_signal_catching, pinned in the tests)
DEADLINE_S = 6.0


class StopSignals:
    """While active, SIGINT, SIGTERM and SIGHUP stop the search and are remembered (`received`).

    `install()` must run again after Ray starts in this process: Ray installs its own SIGTERM handler then.
    Handlers can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self, deadline_s: float = DEADLINE_S) -> None:
        self.received: int | None = None
        self.deadline_s = deadline_s
        self._previous: dict[int, Any] = {}
        self._on_deadline: Callable[[], None] | None = None
        self._in_tune = False

    def on_deadline(self, action: Callable[[], None] | None) -> None:
        """What the watchdog does before it ends the process (None: nothing)."""
        self._on_deadline = action

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in HANDLED:
            previous = signal.signal(sig, self._stop)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    @contextlib.contextmanager
    def tune_fit(self) -> Iterator[None]:
        """Around `Tuner.fit`: a stop signal asks Ray Tune to stop gracefully instead of interrupting it.

        Until Ray Tune sets its SIGUSR1 handler (early in `fit`), SIGUSR1 interrupts like Ctrl-C, so a stop
        in that moment is never the default action (which would end the process at once)."""
        main = threading.current_thread() is threading.main_thread()
        saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # SIGINT stays ours: it must set the deadline too
        saved_usr1 = signal.signal(TUNE_STOP, signal.default_int_handler) if main else None
        self._in_tune = main
        try:
            yield
        finally:
            self._in_tune = False
            if main:
                signal.signal(TUNE_STOP, saved_usr1 if saved_usr1 is not None else signal.SIG_DFL)
            if saved_env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
            threading.Thread(target=self._watchdog, name="stop-deadline", daemon=True).start()
        if first and self._in_tune:
            signal.raise_signal(TUNE_STOP)
            return
        raise KeyboardInterrupt

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
        """The signal that stopped the search (SIGINT when none was received)."""
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
