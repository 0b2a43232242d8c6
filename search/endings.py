"""How a search that does not complete ends: the exceptions launch.py turns into exit codes, and the lines that
tell the user where what finished is and how to resume it."""
from __future__ import annotations

import shlex
from pathlib import Path

from ecg.values import printable


def shown(path: Path | str) -> str:
    """A path as printed: control characters in a folder's name escaped, so they cannot drive the terminal."""
    return printable(str(path))


class SearchInterrupted(RuntimeError):
    """The search stopped before every trial finished (Ctrl-C, SIGTERM, SIGHUP); what finished is exported."""

    def __init__(self, run_dir: Path, signal_name: str = "SIGINT", exit_code: int = 130, *,
                 announced: bool = False) -> None:
        self.run_dir, self.signal_name, self.exit_code = run_dir, signal_name, exit_code
        self.announced = announced  # `interrupted_message` printed already
        super().__init__(f"search interrupted ({signal_name}); resume it with: {resume_command(run_dir)}")


class StoppedBeforeSearch(RuntimeError):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) before the search began: a new run's folder was removed, a resumed
    run's status left as it was."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        self.signal_name, self.exit_code = signal_name, exit_code
        super().__init__(f"stopped by {signal_name} before the search began")


def resume_command(run_dir: Path) -> str:
    path = Path(run_dir).resolve()
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return f"python launch.py --resume {shlex.quote(shown)}"


def interrupted_message(signal_name: str, run_dir: Path) -> str:
    """What a stopped search tells its user: where what finished is, and the command that resumes it."""
    return (f"\nSearch interrupted ({signal_name}); what finished is in {shown(run_dir)}.\nResume with:\n  "
            f"{resume_command(run_dir)}")


def report_not_rebuilt(run_dir: Path, signal_name: str) -> str:
    return f"report not rebuilt after {signal_name} (python -m search.report {shlex.quote(str(run_dir))} rebuilds it)"


class SearchFailed(RuntimeError):
    """The search could not go on (the disk is full, trials that cannot be placed); what finished is exported
    and run.json says `failed` with the reason. The message is one line."""

    def __init__(self, run_dir: Path, reason: str) -> None:
        self.run_dir, self.reason = run_dir, reason
        super().__init__(f"{reason}; what finished is in {shown(run_dir)}")
