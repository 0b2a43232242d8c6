"""Trial failures that must not be retried, and the trial's own small files on the run's storage.

Ray retries every trial error up to `--max-failures` times. A non-finite loss or an out-of-memory error
would only happen again, so the trial writes a `fatal.json` marker next to its results (in the trial's
folder on the run's storage, visible to every node) before raising; a retry that finds the marker raises
the same error at once, so the trial ends as errored within seconds and Optuna records it as FAILED.
"""
from __future__ import annotations

import errno
import json
import os

import pyarrow.fs

FATAL_FILE = "fatal.json"
# The switch of the fault-injection test hook (`search.faults`), which is imported only when it is set.
FAULT_ENV = "ECG_SEARCH_FAULT"


class TrialFailed(RuntimeError):
    """A trial that must not be retried (non-finite loss, out of memory); the message gives the reason."""


DISK_FULL = os.strerror(errno.ENOSPC)  # "No space left on device": how a trial's error says the disk is full


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno == errno.ENOSPC


def faults_injected() -> bool:
    """Whether the test hook is on (`ECG_SEARCH_FAULT` set): only then is `search.faults` imported."""
    return bool(os.environ.get(FAULT_ENV, "").strip())


def trial_number(trial_dir_name: str, trial_id: str) -> int:
    """The trial's creation number (1-based) from Ray's trial folder name
    "<trainable>_<trial id>_<number>_<params>_<date>"; 0 when the name does not have that form."""
    _, found, rest = trial_dir_name.partition(f"{trial_id}_")
    number = rest.split("_", 1)[0]
    return int(number) if found and number.isdigit() else 0


class TrialFolder:
    """Small JSON files in a trial's folder on the run's storage (local disk or a shared file system)."""

    def __init__(self, filesystem: pyarrow.fs.FileSystem, path: str) -> None:
        self.filesystem, self.path = filesystem, path

    def read(self, name: str) -> dict | None:
        try:
            with self.filesystem.open_input_stream(f"{self.path}/{name}") as stream:
                return json.loads(stream.read().decode())
        except (FileNotFoundError, OSError):
            return None

    def write(self, name: str, value: dict) -> None:
        self.filesystem.create_dir(self.path, recursive=True)
        with self.filesystem.open_output_stream(f"{self.path}/{name}") as stream:
            stream.write(json.dumps(value).encode())
