"""A run folder, `results/<space>-<YYYYmmdd-HHMMSS>/`: what a researcher keeps of a search, and its one owner.

Everything that reads or writes a run folder asks `RunFolder`: the names of its files, the lock that makes one
process its only writer, run.json as a typed `RunRecord`, where the Optuna study and Ray's experiment live,
writing each file atomically, and reading every file back with a one-line error naming what is wrong.

    folder = RunFolder.create(Path("results"), "ecgnet")      # a new, empty folder, locked by this process
    folder.save(record)                                      # run.json
    folder.write_csv(TRIALS, frame)                          # atomic: a crash leaves the previous version
    RunFolder.open(path).record                              # read back (report, retrain, prediction)

The lock is an OS lock (`flock`) on `.lock` in the folder, held from creation (or `--resume`) to the end of the
process: it dies with the process, so a SIGKILLed search never leaves a stale lock, and a second writer is
refused in one line naming the holder. run.json records no path into the folder (only names relative to it)
and `location`, where the folder was when its search last ran: a folder moved or copied elsewhere knows it was
relocated, and resumes in place. Nothing here imports Ray or Optuna: `search.study` opens the study this
module locates.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pandas as pd

from ecg.atomic import write_atomic

if TYPE_CHECKING:
    from ecg.data.source import DataSpec

# The files of a run folder (names relative to it).
RUN_FILE = "run.json"
LOCK_FILE = ".lock"
SPLIT = "split.csv"
TRIALS = "trials.csv"
EPOCHS = "epochs.csv"
BEST_CONFIGS = "best_configs.csv"
TEST_RESULTS = "test_results.csv"
PER_CLASS = "per_class.csv"
TEST_PROBABILITIES = "test_probabilities.csv"  # each evaluated model's test probabilities (the report's intervals)
PER_SOURCE = "per_source.csv"  # CinC 2021 only
PARETO = "pareto.csv"  # --objectives only
REPORT = "report.html"
STUDY_FILE = "optuna.db"
EXPERIMENT = "tune"  # Ray Tune's experiment folder: trials, checkpoints, TensorBoard events
DIGESTS = "state_digests.json"  # keyed digests of Ray's state files (search.integrity)
# The evaluated models (winners, ensembles) as `python -m ecg.predict` applies them (ecg.predict.manifest): written
# when the winners are evaluated; absent from a run made before it existed.
MODELS = "models.json"
# A study made before studies were named after their run.
LEGACY_STUDY_NAME = "search"
ENDED_SILENTLY = "interrupted (the process ended without saying so)"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked; the message is one line naming the folder or file."""


class RunLocked(RunFolderError):
    """Another live process writes this run folder."""


# --- atomic writes: ecg.atomic (shared with the caches); write_atomic stays importable from here


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_json(value: Any, path: Path) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2, default=str) + "\n"))


def read_run_csv(path: Path) -> pd.DataFrame:
    """A CSV of a run (trials.csv, best_configs.csv, Ray's progress.csv) with trial ids as text: Ray's 8 hex
    digits may read as a number ("9884e585" is 9884 x 10^585, a float)."""
    return pd.read_csv(path, dtype={"trial_id": str})


# --- run.json

@dataclass
class DataRecord:
    """run.json's `data`: the records a run searched on, as loaded and split. Keys this version does not know
    are kept in `other` and written back unchanged."""

    source: str | None = None  # one line: where the records came from
    spec: dict[str, Any] | None = None  # ecg.data.source.DataSpec.to_dict(): what a retrain loads again
    convention: dict[str, Any] | None = None  # task, split and metric: what results compare with
    fingerprint: str | None = None
    records: int | None = None
    leads: int | None = None
    samples: int | None = None
    fs: int | None = None
    rates: list[int] | None = None  # the data/fs the space samples, each resampled once
    classes: int | None = None
    split: dict[str, int] | None = None  # records per part
    skipped_records: list[dict[str, str]] = field(default_factory=list)
    other: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "DataRecord":
        values = values or {}
        known = {f.name for f in fields(cls)} - {"other"}
        return cls(**{k: v for k, v in values.items() if k in known},
                   other={k: v for k, v in values.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        other = values.pop("other")
        return {**{k: v for k, v in values.items() if v is not None}, **other}


@dataclass
class RunRecord:
    """Everything run.json holds. Fields left None are not written; keys this version does not know (from
    another version) are kept in `other` and written back unchanged."""

    status: str  # running | interrupted | failed | complete
    space: str
    seed: int
    args: dict[str, Any]  # the resolved SearchOptions (SearchOptions.to_dict)
    data: DataRecord = field(default_factory=DataRecord)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    versions: dict[str, str] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    # Where the folder was when a search last ran in it: a resume from elsewhere knows it was moved or copied.
    location: str | None = None
    # Ray's experiment: "tune" inside the folder, or an absolute path on --storage-path (shared by a cluster).
    experiment_path: str | None = None
    study: str | None = None  # the Optuna study's file in the folder
    study_name: str | None = None
    hardware: dict[str, Any] | None = None
    dashboard: str | None = None
    ray_start_s: float | None = None
    fit_started: float | None = None  # time.time() when Tuner.fit began (the benches measure trial start from it)
    fit_time_s: float | None = None
    budget_spent_s: float | None = None  # --time-budget: seconds the search has trained, over every launch
    search_time_s: float | None = None
    wall_time_s: float | None = None
    trials: dict[str, int] | None = None  # count by Ray status
    over_budget: int | None = None  # trials rejected before training (--max-params, --max-latency-ms)
    study_trials: int | None = None
    search_constants: dict[str, Any] | None = None
    orphaned_study_trials_failed: int | None = None
    winners: list[str] | None = None
    skipped_winners: list[dict[str, str]] | None = None
    chosen_model: dict[str, Any] | None = None
    evaluation_device: str | None = None
    stopped_by: str | None = None  # the signal that interrupted the search (SIGINT, SIGTERM, SIGHUP)
    failure: str | None = None  # why a failed run stopped
    unwritten: dict[str, str] | None = None  # exports that could not be written (a full disk), with the reason
    resumes: list[dict[str, Any]] = field(default_factory=list)
    relocations: list[dict[str, str]] = field(default_factory=list)  # resumed after a move or a copy: from, to
    updated: str | None = None
    other: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunRecord":
        known = {f.name for f in fields(cls)} - {"other"}
        args = values.get("args") or {}
        values = {"space": args.get("space"), "seed": args.get("seed"), **values}
        record = cls(**{k: v for k, v in values.items() if k in known and k != "data"},
                     other={k: v for k, v in values.items() if k not in known})
        record.data = DataRecord.from_dict(values.get("data"))
        return record

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        other = values.pop("other")
        values["data"] = self.data.to_dict()
        lists = ("resumes", "relocations")  # written only once there is one
        return {**{k: v for k, v in values.items() if v is not None and (k not in lists or v)}, **other}


# --- the lock

@dataclass(frozen=True)
class Holder:
    """The process that writes a run folder, as it wrote itself into the lock file."""

    pid: int | None
    host: str
    since: str
    command: str = ""

    def describe(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'} on {self.host}, since {self.since}"


def _this_process() -> Holder:
    return Holder(pid=os.getpid(), host=socket.gethostname(), since=time.strftime("%Y-%m-%dT%H:%M:%S"),
                  command=" ".join(sys.argv)[:300])


def _in_use_by(holder: Holder | None) -> str:
    """How a refusal names the folder's writer: "in use by pid P on HOST, since T; wait ... (kill -TERM P) ..."."""
    who = holder.describe() if holder else "another process"
    pid = holder.pid if holder and holder.pid else "<pid>"
    return f"in use by {who}; wait for it to end or stop it (kill -TERM {pid}), then try again"


LOCK_WAIT_S = 2.0  # a reader's probe (`holder`) holds the lock for an instant: a writer tries again this long


# --- the folder

class RunFolder:
    """One run folder (see the module docstring). `create` and `open` do not lock; `lock()` (or `locked()`)
    makes this process its only writer, and every `write_*`/`save` requires it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._record: RunRecord | None = None
        self._saved = False  # this object wrote run.json: a `running` in it is this process's own search

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- making and finding

    @classmethod
    def create(cls, results_dir: Path, space: str) -> "RunFolder":
        """`results_dir/<space>-<YYYYmmdd-HHMMSS>`, with -2, -3, ... when that exists (a run never overwrites
        another), made and locked by this process."""
        results_dir = Path(results_dir)
        results_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{space}-{datetime.now():%Y%m%d-%H%M%S}"
        for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
            candidate = results_dir / f"{stem}{suffix}"
            try:
                candidate.mkdir()  # atomic: two runs started in the same second get different folders
            except FileExistsError:
                continue
            folder = cls(candidate)
            folder.lock()
            return folder
        raise RunFolderError(f"no free run folder name for {stem} in {results_dir}")

    @classmethod
    def open(cls, path: Path) -> "RunFolder":
        """An existing run folder (one holding run.json); RunLocked naming the process that holds one still
        starting (no run.json yet), RunFolderError otherwise."""
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"{path}: no such folder")
        if not (path / RUN_FILE).is_file():
            holder = cls(path).holder()
            if holder is not None:  # a search starting in it: run.json comes once its data is split and Ray is up
                raise RunLocked(f"{path} is a run folder still starting: no {RUN_FILE} yet, and it is "
                                f"{_in_use_by(holder)}")
            raise RunFolderError(f"{path} is not a run folder (no {RUN_FILE})")
        return cls(path)

    def file(self, name: str) -> Path:
        """The path of one of the folder's files (a name of this module: TRIALS, SPLIT, ...)."""
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    # -- the lock

    def lock(self) -> None:
        """Make this process the folder's only writer until it ends (or `unlock`); RunLocked naming the holder
        when another live process has it, RunFolderError when the folder cannot be written."""
        if self._lock_fd is not None:
            return
        path = self.path / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise RunFolderError(f"{self.path}: cannot write in this run folder ({err.strerror})") from None
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    raise RunFolderError(f"{self.path}: cannot lock this run folder ({err.strerror})") from None
                if time.monotonic() > deadline:
                    holder = self._read_holder()
                    os.close(fd)
                    raise RunLocked(f"{self.path} is {_in_use_by(holder)}") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(_this_process())) + "\n").encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock, emptying .lock first: it names a holder only while one holds it (a refused or
        finished writer leaves the folder's files as they were)."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunFolder"]:
        """`lock()` for the block (a lock this process already held stays held after it)."""
        held = self._lock_fd is not None
        self.lock()
        try:
            yield self
        finally:
            if not held:
                self.unlock()

    @property
    def is_locked_here(self) -> bool:
        return self._lock_fd is not None

    def holder(self) -> Holder | None:
        """The live process holding the lock (this one included), or None when no process does."""
        if self._lock_fd is not None:
            return self._read_holder()
        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # no lock file: never locked (a folder from before the lock), or unreadable
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return self._read_holder() or Holder(None, "?", "?")
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _read_holder(self) -> Holder | None:
        try:
            values = json.loads((self.path / LOCK_FILE).read_text())
            return Holder(**{k: values.get(k) for k in ("pid", "host", "since", "command")})
        except (OSError, ValueError, TypeError):
            return None

    def _require_lock(self, what: str) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"{what} in {self.path} without its lock (RunFolder.lock() first)")

    # -- run.json

    @property
    def record(self) -> RunRecord:
        """run.json, read once (RunFolderError, one line, for a missing, cut or foreign file)."""
        if self._record is None:
            self._record = self.read_record()
        return self._record

    def read_record(self) -> RunRecord:
        path = self.path / RUN_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunFolderError(f"{self.path} is not a run folder (no {RUN_FILE})") from None
        except (OSError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{path} is unreadable ({err})") from None
        try:
            info = json.loads(text)
        except json.JSONDecodeError as err:
            cut = " (cut short?)" if err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated") else ""
            raise RunFolderError(f"{path} is not valid JSON at line {err.lineno} column {err.colno}: "
                                 f"{err.msg}{cut}") from None
        if not isinstance(info, dict):
            raise RunFolderError(f"{path} holds a JSON {type(info).__name__}, not a run record")
        missing = [key for key in ("status", "args", "data") if key not in info]
        if missing:
            raise RunFolderError(f"{path} lacks {', '.join(missing)} (not written by launch.py?)")
        if not isinstance(info["args"], dict) or not isinstance(info["data"], dict):
            raise RunFolderError(f"{path}: 'args' and 'data' must be JSON objects")
        try:
            return RunRecord.from_dict(info)
        except TypeError as err:
            raise RunFolderError(f"{path} is not a run record ({err})") from None

    def save(self, record: RunRecord) -> None:
        """Write run.json (atomically) and keep `record` as this folder's record."""
        self._require_lock("writing run.json")
        record.updated = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(record.to_dict(), self.path / RUN_FILE)
        self._record, self._saved = record, True

    def status(self) -> str:
        """run.json's status, except that a run recorded `running` that no live process holds ended without
        saying so (SIGKILL, a machine crash): ENDED_SILENTLY."""
        status = self.record.status
        if status != "running":
            return status
        if self._lock_fd is not None:  # the lock is ours: an earlier process's `running` ended with it
            return status if self._saved else ENDED_SILENTLY
        return ENDED_SILENTLY if self.holder() is None else status

    # -- places

    @property
    def study_name(self) -> str:
        return self.record.study_name or LEGACY_STUDY_NAME

    @property
    def study_url(self) -> str:
        """The Optuna storage URL of the folder's study, at the folder's present place."""
        return f"sqlite:///{(self.path / STUDY_FILE).resolve()}"

    def experiment_dir(self, storage_path: Path | None = None) -> Path:
        """Ray's experiment folder: `tune/` in this folder, or `<storage_path>/<run name>/tune` (a cluster's
        shared storage)."""
        if storage_path is not None:
            return (Path(storage_path) / self.path.name).resolve() / EXPERIMENT
        return self.path.resolve() / EXPERIMENT

    def relocated_from(self) -> str | None:
        """Where the folder was when its search last ran, when that is not here (it was moved or copied)."""
        location = self.record.location
        if location is None or Path(location) == self.path.resolve():
            return None
        return location

    def data_spec(self) -> DataSpec:
        """The records the run searched on, as run.json records them (what a retrain or a prediction on the run's
        own split loads again); RunFolderError, one line, for a record that does not say."""
        from ecg.data.source import DataSpec

        data, args = self.record.data, self.record.args
        try:
            if data.spec is not None:
                return DataSpec.from_dict(data.spec)
            if args.get("data") is None:  # a run recorded before the spec was: the search's synthetic set
                return DataSpec(n_records=args["n_records"], seed=args["seed"], fs=data.fs, length=data.samples)
            return DataSpec(data=args["data"], labels=args.get("labels"))
        except (ValueError, KeyError, TypeError) as error:
            raise RunFolderError(f"{self.path / RUN_FILE}: not a readable run record ({type(error).__name__}: "
                                 f"{error})") from None

    # -- the other files

    def write_csv(self, name: str, frame: pd.DataFrame) -> Path:
        self._require_lock(f"writing {name}")
        return write_csv(frame, self.path / name)

    def write_json(self, name: str, value: Any) -> Path:
        self._require_lock(f"writing {name}")
        return write_json(value, self.path / name)

    def write_text(self, name: str, text: str) -> Path:
        self._require_lock(f"writing {name}")
        return write_atomic(self.path / name, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write_with(self, name: str, write: Callable[[Path], Any]) -> Path:
        """`write(path)` writes the file; it lands at `name` atomically."""
        self._require_lock(f"writing {name}")
        return write_atomic(self.path / name, write)

    def read_json(self, name: str) -> Any:
        """One of the folder's JSON files (models.json, ...); None when it is absent. RunFolderError, one line,
        for a file that is unreadable or not JSON (written atomically, so it was damaged after it was written)."""
        path = self.path / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{path} is unreadable ({err})") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise RunFolderError(f"{path} is not valid JSON at line {err.lineno} column {err.colno}: {err.msg} "
                                 "(the file was damaged after it was written)") from None

    def read_csv(self, name: str) -> pd.DataFrame:
        """One of the folder's CSVs; an empty frame when it is absent or holds nothing (an interrupted run has no
        test results). RunFolderError, one line, for a file cut short or with a malformed row: a file of this
        folder is written atomically, so either means it was damaged after it was written."""
        path = self.path / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return pd.DataFrame()
        except OSError as err:
            raise RunFolderError(f"{path} is unreadable ({err.strerror})") from None
        if not data.strip():
            return pd.DataFrame()
        if not data.endswith(b"\n"):
            line = data.count(b"\n") + 1
            raise RunFolderError(f"{path} ends in the middle of line {line} (the file was cut short); restore it "
                                 "from a copy, or rerun the search")
        text = data.decode("utf-8", errors="replace")
        rows = csv.reader(io.StringIO(text))
        width = len(next(rows, []))
        for line, row in enumerate(rows, start=2):
            if row and len(row) != width:
                raise RunFolderError(f"{path}, line {line}: {len(row)} fields where the header has {width} (the "
                                     "file was damaged after it was written)")
        try:
            frame = read_run_csv(path)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise RunFolderError(f"{path} is not a readable CSV ({' '.join(str(err).split())[:200]})") from None
        return frame
