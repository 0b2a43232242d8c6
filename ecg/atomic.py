"""Atomic file writes: a crash or a full disk mid-write leaves the previous version, never half a file.

Shared by the run folder's exports and the caches; it imports only the standard library and numpy, so the readers that run
before Ray's start can use it without cost."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary_path)` in `path`'s folder and rename the result to `path`; the temporary file never
    survives."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; these are ordinary files
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """`np.savez` of `arrays` to `path`, atomically (through an open file, so numpy adds no second suffix)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            np.savez(out, **arrays)

    return write_atomic(path, write)
