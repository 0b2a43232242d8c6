"""`load_dataset` and `load_labels`: detect the format of a path and read it, through the cache.

Formats are a registry (`FORMATS`), tried in order; each knows how to recognise its input, read labels
alone, read everything, and list the source files whose names, sizes and mtimes key the cache.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ecg.data import cache, hefei, npz, physionet
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, ECGDataset
from ecg.data.errors import DataError
from ecg.data.labels import warn_empty_classes

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Options:
    """What a reader needs besides the path."""

    labels: Path | None
    leads: tuple[str, ...]
    length: int
    fs: int
    present_only: bool


@dataclass(frozen=True)
class Format:
    """One input format: how to recognise it and read it."""

    name: str
    detect: Callable[[Path], bool]
    read_labels: Callable[[Path, Options], tuple[ECGDataset, int]]
    read: Callable[[Path, Options], ECGDataset]
    source_files: Callable[[Path, Options], list[str | Path]]


def _hefei_files(path: Path, options: Options) -> hefei.HefeiFiles:
    return hefei.find_hefei_files(path, label_file=options.labels)


def _hefei_labels(path: Path, options: Options) -> tuple[ECGDataset, int]:
    files = _hefei_files(path, options)
    dataset = hefei.read_hefei_labels(files)
    return dataset, int(hefei.present_mask(files, dataset.record_ids).sum())


def _hefei_read(path: Path, options: Options) -> ECGDataset:
    return hefei.read_hefei(_hefei_files(path, options), leads=options.leads, length=options.length,
                            fs=options.fs, present_only=options.present_only)


def _hefei_sources(path: Path, options: Options) -> list[str | Path]:
    files = _hefei_files(path, options)
    folder = os.fspath(files.record_dir)
    records = [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".txt")]
    return [files.label_file, *([files.class_file] if files.class_file else []), *records]


def _wfdb_labels(path: Path, options: Options) -> tuple[ECGDataset, int]:
    dataset, present, _ = physionet.read_wfdb_labels(path, options.labels)
    return dataset, int(present.sum())


def _wfdb_read(path: Path, options: Options) -> ECGDataset:
    return physionet.read_wfdb(path, labels=options.labels, leads=options.leads, length=options.length,
                               fs=options.fs, present_only=options.present_only)


def _npz_read(path: Path, options: Options) -> ECGDataset:
    return npz.read_npz(path, leads=options.leads, length=options.length, fs=options.fs)


FORMATS: list[Format] = [
    Format("npz", npz.looks_like_npz, lambda path, _: npz.read_npz_labels(path), _npz_read, lambda path, _: [path]),
    Format("hefei", hefei.looks_like_hefei, _hefei_labels, _hefei_read, _hefei_sources),
    Format("wfdb", physionet.looks_like_wfdb, _wfdb_labels, _wfdb_read, lambda path, _: physionet.source_files(path)),
]


def register_format(fmt: Format, *, first: bool = False) -> None:
    """Add a format to the registry (tried in order; `first` puts it ahead of the others)."""
    FORMATS.insert(0, fmt) if first else FORMATS.append(fmt)


def detect_format(path: Path) -> Format:
    """The first registered format that recognises `path`; an error listing them when none does."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    for fmt in FORMATS:
        if fmt.detect(path):
            return fmt
    raise DataError(f"{path}: not a recognised dataset (formats: {', '.join(f.name for f in FORMATS)}; "
                    "see docs/data.md)")


def _options(labels: PathLike | None, leads: Sequence[str], length: int, fs: int, present_only: bool) -> Options:
    if length <= 0 or fs <= 0:
        raise DataError(f"length ({length}) and fs ({fs}) must be positive")
    if not leads:
        raise DataError("at least one lead must be requested")
    labels = None if labels is None else Path(labels).expanduser().resolve()
    return Options(labels, tuple(leads), int(length), int(fs), bool(present_only))


def load_dataset(
    path: PathLike | None = None,
    *,
    labels: PathLike | None = None,
    leads: Sequence[str] = HEFEI_LEADS,
    length: int = N_SAMPLES,
    fs: int = FS,
    present_only: bool = False,
    cache_dir: PathLike | None = None,
    use_cache: bool = True,
) -> ECGDataset:
    """Read a Hefei folder, a WFDB folder or an `.npz` (detected) into an `ECGDataset` of int16 signals.

    `labels` is an explicit label file (Hefei) or labels CSV (WFDB); `leads` are chosen by name,
    case-insensitively; `length`/`fs` are the target samples and rate; `present_only` skips records listed
    without a signal file. The parsed result is cached under `cache_dir` (default `$ECG_CACHE_DIR` or
    `~/.cache/ecg-autosearch`), keyed by the source files' names, sizes and mtimes and these options.
    """
    if path is None:
        raise DataError("no data path given (the synthetic set is ecg.synthetic.load_synthetic)")
    path = Path(path).expanduser().resolve()  # once, so cache keys do not depend on the working directory
    options = _options(labels, leads, length, fs, present_only)
    fmt = detect_format(path)
    key = None
    if use_cache:
        directory = Path(cache_dir).expanduser() if cache_dir is not None else cache.default_cache_dir()
        sources = fmt.source_files(path, options)
        if options.labels is not None:
            sources.append(options.labels)
        key = cache.source_key(sources, {"format": fmt.name, **{k: str(v) for k, v in vars(options).items()}})
        cached = cache.load_cached(directory, key)
        if cached is not None:
            warn_empty_classes(cached.labels, cached.class_names, path)
            return cached
    dataset = fmt.read(path, options)
    warn_empty_classes(dataset.labels, dataset.class_names, path)
    if key is not None:
        try:
            cache.store(directory, key, dataset)
        except OSError as error:  # a full or read-only disk costs the next load time, not this one its data
            warnings.warn(f"could not write the dataset cache in {directory}: {error}", stacklevel=2)
    return dataset


def load_labels(path: PathLike, *, labels: PathLike | None = None) -> tuple[ECGDataset, int]:
    """Labels, age and sex without reading any signal (signals None), and how many records have a signal file."""
    path = Path(path).expanduser()
    options = _options(labels, HEFEI_LEADS, N_SAMPLES, FS, True)
    return detect_format(path).read_labels(path, options)
