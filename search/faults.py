"""The explicit test hook that injects faults into trials (off unless `ECG_SEARCH_FAULT` is set).

The environment variable `ECG_SEARCH_FAULT` makes trials fail on purpose, e.g. `ECG_SEARCH_FAULT="raise@2"`
or `"nan@1;trials=1,3"` or `"raise@2;times=1"`:
    kind     raise (a RuntimeError), nan (ecg.train.NonFiniteLossError), oom (torch.OutOfMemoryError),
             sleep (pauses 3 s per epoch from that epoch on: for interrupting a run mid-trial),
             hold (waits at that epoch's end until `n=` trials of the run have got there, at most 120 s:
             for tests that need trials running at once, whatever the machine's load),
             diskfull (OSError ENOSPC, "No space left on device", as a write to a full disk raises),
             corrupt (no failure; the search overwrites this trial's best checkpoint with garbage after the
             search, so the winners' evaluation meets a corrupt checkpoint)
    @epoch   the (1-based) epoch at whose end the fault fires
    trials=  trial numbers it applies to (the study's, from 0, in creation order: the number after the trial id
             in Ray's trial folder name, the `trial_number` column of trials.csv); all trials when absent
    times=   how many attempts of a trial fail (then the retry succeeds); unlimited when absent
    n=       (hold) how many trials must reach the epoch before any goes on
Several faults in one run are separated by `|`, e.g. `"raise@2;trials=1;times=1 | nan@1;trials=2"`; a trial
gets the first one that applies to it (so one Ray run can show several faults: tests/search/test_faults.py).
`search.trainable` and `search.runner` import this module only when the variable is set
(`search.trial_failures.faults_injected`); nothing else looks at it.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

import pyarrow.fs

from search.trial_failures import DISK_FULL, FAULT_ENV, TrialFolder

ATTEMPTS_FILE = "fault_attempts.json"
HOLD_FILE = "fault_hold.json"
HOLD_TIMEOUT_S = 120.0  # a hold that is never met lets its trials go on: the test then fails on what it checks
FAULT_KINDS = ("raise", "nan", "oom", "sleep", "hold", "corrupt", "diskfull")


class InjectedFault(RuntimeError):
    """Raised by the test hook (`ECG_SEARCH_FAULT=raise@N`)."""


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    epoch: int
    trials: frozenset[int] | None = None
    times: int | None = None
    n: int = 1  # hold: trials that must arrive

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        head, *parts = [p.strip() for p in text.split(";") if p.strip()]
        kind, _, epoch = head.partition("@")
        if kind not in FAULT_KINDS or not epoch.isdigit():
            raise ValueError(f"{FAULT_ENV}={text!r}: expected KIND@EPOCH with KIND one of {', '.join(FAULT_KINDS)}")
        trials = times = None
        n = 1
        for part in parts:
            key, _, value = part.partition("=")
            if key == "trials":
                trials = frozenset(int(v) for v in value.split(","))
            elif key == "times":
                times = int(value)
            elif key == "n":
                n = int(value)
            else:
                raise ValueError(f"{FAULT_ENV}={text!r}: unknown part {part!r} (trials=..., times=..., n=...)")
        return cls(kind, int(epoch), trials, times, n)

    def applies_to(self, trial_number: int) -> bool:
        return self.trials is None or trial_number in self.trials


def configured_faults() -> list[FaultSpec]:
    """The faults `ECG_SEARCH_FAULT` asks for (`|`-separated); empty when it is unset."""
    return [FaultSpec.parse(part) for part in os.environ.get(FAULT_ENV, "").split("|") if part.strip()]


class FaultInjector:
    """Fires the configured fault in this trial at the end of its epoch (called from the epoch callback)."""

    def __init__(self, specs: list[FaultSpec], number: int, folder: TrialFolder) -> None:
        self.spec = next((spec for spec in specs if spec.applies_to(number)), None)
        self.folder = folder

    def at_epoch_end(self, epoch: int) -> None:
        spec = self.spec
        if spec is None or epoch < spec.epoch or spec.kind == "corrupt":
            return
        if spec.kind == "sleep":
            time.sleep(3.0)
            return
        if epoch != spec.epoch:
            return
        if spec.kind == "hold":
            self._hold(spec.n)
            return
        attempts = (self.folder.read(ATTEMPTS_FILE) or {}).get("count", 0)
        if spec.times is not None and attempts >= spec.times:
            return
        self.folder.write(ATTEMPTS_FILE, {"count": attempts + 1})
        message = f"fault injected by {FAULT_ENV} at epoch {epoch} (attempt {attempts + 1})"
        if spec.kind == "raise":
            raise InjectedFault(message)
        if spec.kind == "diskfull":
            raise OSError(errno.ENOSPC, f"{DISK_FULL} ({message})")
        if spec.kind == "nan":
            from ecg.train import NonFiniteLossError

            raise NonFiniteLossError(f"loss is nan ({message})")
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory ({message})")

    def _hold(self, n: int) -> None:
        """Mark this trial as arrived (a file in its folder) and wait until `n` trial folders of the run have
        the mark, or HOLD_TIMEOUT_S has passed."""
        self.folder.write(HOLD_FILE, {"at": time.time()})
        experiment = self.folder.path.rsplit("/", 1)[0]
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while time.monotonic() < deadline:
            trial_dirs = self.folder.filesystem.get_file_info(pyarrow.fs.FileSelector(experiment))
            marks = self.folder.filesystem.get_file_info([f"{d.path}/{HOLD_FILE}" for d in trial_dirs
                                                          if d.type == pyarrow.fs.FileType.Directory])
            if sum(m.type == pyarrow.fs.FileType.File for m in marks) >= n:
                return
            time.sleep(0.2)


def corrupt_checkpoints(table) -> list[str]:
    """Test hook `ECG_SEARCH_FAULT=corrupt@0;trials=...`: overwrite those trials' best checkpoints with
    garbage after the search, so the winners' evaluation meets a corrupt file. Returns the trial ids hit."""
    specs = [spec for spec in configured_faults() if spec.kind == "corrupt"]
    hit = []
    for record in table.records:
        if record.checkpoint is not None and any(spec.applies_to(record.number) for spec in specs):
            for path in record.checkpoint.glob("*.safetensors"):
                path.write_bytes(b"not a safetensors file")
            hit.append(record.trial_id)
    return hit
