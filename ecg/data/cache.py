"""Cache of parsed datasets, keyed by a fingerprint of the source files (names, sizes, mtimes) and the options.

An entry is a folder `<cache_dir>/<key>/` with `signals.npy` (raw int16, read back with one `np.load`),
`arrays.npz` (age, sex, labels) and `meta.json` (names, lead names, fs, scale, content fingerprint, and the
records `skip_bad_records` left out, with their reasons).
Entries are written to a temporary folder and renamed into place, so a crash never leaves a half entry.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ecg.atomic import save_npz_atomic
from ecg.data.dataset import ECGDataset

# Bump when the parsed form changes, so old entries are not reused. 2: Hefei rows are checked for their
# values per row (a version-1 entry may hold a ragged record read wrongly), and long WFDB records at another
# rate are cut at length/fs seconds before resampling (their last samples differ slightly). 3: the same cut
# for .npz records, and every value checked by ecg.values (a version-2 entry may hold an age of inf).
CACHE_VERSION = 3
# What reading an entry that is cut, overwritten or from elsewhere raises: the entry is then made again.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
DRAWS = "draws"  # the folder of `store_draw`'s entries, beside the datasets' entries


def default_cache_dir() -> Path:
    """`$ECG_CACHE_DIR`, else `~/.cache/ecg-autosearch`."""
    return Path(os.environ.get("ECG_CACHE_DIR") or Path.home() / ".cache" / "ecg-autosearch")


def source_key(files: Iterable[Path], options: dict) -> str:
    """Hash of each source file's path, size and mtime plus the load options (cheap: stats, no reads).

    Paths are taken as given (the loader resolves the dataset folder once), so 20,000 files cost 20,000
    `stat` calls and nothing more. A file that cannot be stat'ed (a dangling symlink, a symlink loop) keys
    as its name and the error: it may be a file no record needs, and a record that does is refused by its
    reader, naming it.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({"version": CACHE_VERSION, **options}, sort_keys=True, default=str).encode())
    for name in sorted(os.fspath(p) for p in files):
        try:
            stat = os.stat(name)
        except OSError as error:  # a dangling symlink or a loop: the reader says so if the load needs the file
            digest.update(f"{name}\0!{error.errno}\n".encode())
            continue
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def fingerprint(dataset: ECGDataset) -> str:
    """Content hash of a dataset (signals, labels, demographics, names): equal data gives an equal string.

    Datasets read through the cache carry the value computed when the entry was written.
    """
    if dataset.known_fingerprint is not None:
        return dataset.known_fingerprint
    digest = hashlib.blake2b(digest_size=16)
    meta = {"classes": list(dataset.class_names), "records": list(dataset.record_ids),
            "leads": list(dataset.lead_names), "fs": dataset.fs, "units_per_mv": dataset.units_per_mv}
    digest.update(json.dumps(meta).encode())
    for array in (dataset.labels, dataset.age, dataset.sex):
        digest.update(np.ascontiguousarray(array).tobytes())
    if dataset.signals is not None:
        signals = np.ascontiguousarray(dataset.signals)
        digest.update(str((signals.dtype.str, signals.shape)).encode())
        digest.update(memoryview(signals.reshape(-1)).cast("B"))
    return digest.hexdigest()


def load_cached(cache_dir: Path, key: str, *, mmap: bool = False) -> ECGDataset | None:
    """The entry for `key`, or None when there is none (or it is unreadable, e.g. from an old version)."""
    entry = cache_dir / key
    try:
        meta = json.loads((entry / "meta.json").read_text())
        arrays = np.load(entry / "arrays.npz")
        signals = np.load(entry / "signals.npy", mmap_mode="r" if mmap else None)
        dataset = ECGDataset(signals=signals, age=arrays["age"], sex=arrays["sex"], labels=arrays["labels"],
                             class_names=meta["class_names"], record_ids=meta["record_ids"],
                             lead_names=meta["lead_names"], fs=meta["fs"], units_per_mv=meta["units_per_mv"],
                             skipped=meta.get("skipped", {}), known_fingerprint=meta["fingerprint"])
    except UNREADABLE:
        return None
    return dataset


def store(cache_dir: Path, key: str, dataset: ECGDataset) -> None:
    """Write `dataset` as the entry for `key` (atomically; an existing entry is left as it is)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / key
    if final.exists():
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
    try:
        np.save(tmp / "signals.npy", np.ascontiguousarray(dataset.signals))
        np.savez(tmp / "arrays.npz", age=dataset.age, sex=dataset.sex, labels=dataset.labels)
        meta = {"class_names": list(dataset.class_names), "record_ids": list(dataset.record_ids),
                "lead_names": list(dataset.lead_names), "fs": int(dataset.fs),
                "units_per_mv": float(dataset.units_per_mv), "fingerprint": fingerprint(dataset),
                "skipped": dict(dataset.skipped)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    dataset.known_fingerprint = meta["fingerprint"]


def load_draw(key: str, cache_dir: Path | None = None) -> dict[str, np.ndarray] | None:
    """The arrays `store_draw` kept for `key` under `<cache_dir>/draws/`, or None (none, or unreadable)."""
    path = (cache_dir or default_cache_dir()) / DRAWS / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except UNREADABLE:
        return None


def store_draw(key: str, arrays: dict[str, np.ndarray], cache_dir: Path | None = None) -> None:
    """Keep `arrays` (a random draw that is costly to make, e.g. the stratified split's) for `key`, atomically;
    a cache that cannot be written is left as it is (the draw is made again next time)."""
    folder = (cache_dir or default_cache_dir()) / DRAWS
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(folder / f"{key}.npz", arrays)
