"""Keyed digests of the Ray state files a run writes, so that `--resume` unpickles nothing this user's runs did
not write.

`Tuner.restore` unpickles (cloudpickle) what it finds in the experiment folder `tune/`: `tuner.pkl`, the
trials inside `experiment_state-*.json` (hex-encoded pickles in the JSON), `search_gen_state-*.json` (a pickle
despite its name), `searcher-state-*.pkl` (the Optuna searcher), `callback-states-*.pkl`, and each trial's
`error.pkl` (the pickled exception, read back into results); `params.pkl` is written beside each trial's
`params.json`. Any of them can run code when loaded, so a run folder received from someone else must not be
resumed blindly. Trial checkpoints are not in the list: they are safetensors plus `torch.load(weights_only=True)`.

A run records HMAC-SHA256(key, relative path, contents) of every such file in `<run>/state_digests.json`;
the key is 32 random bytes in a user-only file (`$XDG_CONFIG_HOME/ecg-autosearch/run-state.key`, else
`~/.config/ecg-autosearch/`), created on first use. Digests are taken at every experiment snapshot, from the
driver's staging copy Ray has just written and before Ray copies it into the run folder (`DigestRecorder`),
so a driver killed at any moment leaves a folder whose files all verify; the last few digests of each file are
kept because the folder's copy may lag one snapshot behind. `verify` runs before Ray reads anything.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, Iterator

from ray.tune import Callback

from ecg.run_folder import DIGESTS, write_json
from search.options import OptionError

RECORD_FILE = DIGESTS
KEY_NAME = "run-state.key"
KEEP = 4  # digests kept per file: the folder's copy of a file may be a snapshot or two behind the staging copy
# What Ray unpickles on restore (module docstring); any other pickle in the experiment or a trial folder counts too.
STATE_PATTERNS = ("*.pkl", "experiment_state-*.json", "search_gen_state-*.json", "basic-variant-state-*.json")
_IS_STATE_FILE = re.compile("|".join(fnmatch.translate(pattern) for pattern in STATE_PATTERNS)).match


class IntegrityError(OptionError):
    """A run folder whose state files do not verify (one line naming the file and what to do)."""


def key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "ecg-autosearch" / KEY_NAME


def load_key(create: bool = False) -> bytes:
    """The user's digest key; with `create`, made on first use (mode 0600, in a 0700 folder)."""
    path = key_path()
    if not path.exists():
        if not create:
            raise IntegrityError(f"no digest key at {path}: this run was recorded under another account or "
                                 "machine; pass --trust-run-folder if you trust where it came from")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another search created it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.getuid():
        raise IntegrityError(f"digest key {path} is not private to this user (mode {stat.S_IMODE(info.st_mode):o}); "
                             "run chmod 600 on it, or delete it (older runs then need --trust-run-folder)")
    return bytes.fromhex(path.read_text().strip())


def digest(key: bytes, relative: str, data: bytes) -> str:
    """HMAC-SHA256 over the path and the contents: a file cannot be swapped for another one of the run."""
    return hmac.new(key, relative.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def state_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to `root`, path) of every file Ray may unpickle under `root`: in the experiment folder
    itself and in each trial's folder. Deeper folders are a trial's checkpoints, which only the trainable reads
    (safetensors, weights-only torch, JSON). Hidden files are Ray's temporary names before a rename; Ray never
    reads them.

    Listed at every experiment snapshot (`DigestRecorder`), so it reads two levels instead of walking every
    checkpoint: late in a long search there are thousands of trial folders (bench/bench_long_run.py)."""
    for name, path, is_dir in _entries(root):
        if not is_dir:
            yield name, path
            continue
        for inner, inner_path, inner_is_dir in _entries(path):
            if not inner_is_dir:
                yield f"{name}/{inner}", inner_path


def _entries(folder: Path) -> list[tuple[str, Path, bool]]:
    """(name, path, is a folder) of `folder`'s state files and sub-folders, by name; none when it is no folder.
    A link to a folder is not followed."""
    try:
        with os.scandir(folder) as listing:
            found = [(entry.name, Path(entry.path), is_dir) for entry in listing
                     if not entry.name.startswith(".")
                     and ((is_dir := entry.is_dir(follow_symlinks=False)) or _IS_STATE_FILE(entry.name))]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found)


class Record:
    """`<run>/state_digests.json`: for each state file (relative to the experiment folder) its latest digests."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / RECORD_FILE
        self.key = load_key(create=True)
        self.files: dict[str, list[str]] = self._read().get("files", {})
        self._seen: dict[Path, tuple[int, int]] = {}  # path -> (mtime_ns, size) already digested

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def add(self, root: Path) -> bool:
        """Digest the state files under `root` not digested in their current version; True when any was new."""
        changed = False
        for relative, path in state_files(root):
            try:
                info = path.stat()
                if self._seen.get(path) == (info.st_mtime_ns, info.st_size):
                    continue
                value = digest(self.key, relative, path.read_bytes())
            except FileNotFoundError:  # replaced while we looked; the next snapshot digests the new one
                continue
            self._seen[path] = (info.st_mtime_ns, info.st_size)
            known = self.files.setdefault(relative, [])
            if value not in known:
                known.append(value)
                del known[:-KEEP]
                changed = True
        return changed

    def save(self) -> None:
        write_json({"algorithm": "HMAC-SHA256(key, relative path NUL contents)", "key": str(key_path()),
                    "files": self.files}, self.path)


def record(run_dir: Path, *roots: Path) -> None:
    """Digest every state file now under `roots` (each a folder mirroring the experiment folder)."""
    current = Record(run_dir)
    if any([current.add(Path(root)) for root in roots]):
        current.save()


def verify(run_dir: Path, experiment_dir: Path) -> None:
    """Refuse (IntegrityError, one line) a run folder with a state file that this user's key did not sign."""
    path = Path(run_dir) / RECORD_FILE
    try:
        files = json.loads(path.read_text())["files"]
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing: nothing shows that this user's searches wrote the Ray state in "
                             f"{experiment_dir} (which --resume would unpickle); pass --trust-run-folder if you "
                             "trust where the folder came from") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise IntegrityError(f"{path} is not a digest record ({err}); pass --trust-run-folder if you trust "
                             "where the folder came from") from None
    key = load_key()
    for relative, state in state_files(Path(experiment_dir)):
        if digest(key, relative, state.read_bytes()) not in files.get(relative, []):
            raise IntegrityError(f"{state} does not match the digest this user's search recorded (changed, or "
                                 "from another run or account); resuming would unpickle it. Pass "
                                 "--trust-run-folder only if you trust where the folder came from")


# The record the driver's current search writes to and its experiment folder (set by `recording`). Module
# state, not callback state: the callback is pickled into tuner.pkl and comes back on resume, when the run
# folder may have moved.
_active: tuple[Record, Path] | None = None


@contextlib.contextmanager
def recording(run_dir: Path, experiment_dir: Path) -> Iterator[None]:
    """While the search runs, `DigestRecorder` callbacks digest every snapshot into `run_dir`'s record."""
    global _active
    _active = (Record(run_dir), Path(experiment_dir))
    try:
        yield
    finally:
        _active = None


class DigestRecorder(Callback):
    """Digests each experiment snapshot as Ray writes it (see the module docstring).

    Ray's TuneController.save_to_dir writes the experiment state and the searcher state into the driver's
    staging folder, then asks every callback for its state (`get_state`), then copies the staging folder into
    the run folder in the background. So `get_state` is the moment the new files exist and are not yet in the
    run folder: digest them then, and return None (nothing of ours is pickled into the experiment).
    """

    def __init__(self) -> None:
        self._staging: Path | None = None

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._staging is None and trials:
            self._staging = Path(trials[0].storage.experiment_driver_staging_path)

    def get_state(self) -> None:
        if _active is None:
            return None
        record, experiment_dir = _active
        staging = self._staging or _newest_staging_folder(experiment_dir.name)
        roots = [root for root in (staging, experiment_dir) if root is not None]
        if any([record.add(root) for root in roots]):
            record.save()
        return None

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: no paths of this session
        return {"_staging": None}


def _newest_staging_folder(experiment_name: str) -> Path | None:
    """Before the first trial exists: the driver staging folder (in this node's Ray session folder,
    artifacts/<timestamp>/<experiment>/driver_artifacts) whose experiment state Ray wrote last, i.e. just now."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return None
    found = sorted(Path(node.get_session_dir_path()).glob(f"artifacts/*/{experiment_name}/driver_artifacts/"
                                                          "experiment_state-*.json"),
                   key=lambda path: path.stat().st_mtime_ns)
    return found[-1].parent if found else None
