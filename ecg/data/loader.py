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

import numpy as np

from ecg.data import cache, cinc2021, hefei, npz, physionet, ptbxl, tasks
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, ECGDataset
from ecg.data.errors import DataError
from ecg.data.labels import warn_empty_classes
from ecg.values import printable, quote

PathLike = str | os.PathLike
SKIPPED_SHOWN = 3  # skipped records quoted in the warning


@dataclass(frozen=True)
class Options:
    """What a reader needs besides the path."""

    labels: Path | None
    leads: tuple[str, ...]
    length: int
    fs: int
    present_only: bool
    task: str | None = None  # a benchmark's classes (ecg.data.tasks); None: the source's own labels
    skip_bad_records: bool = False  # load the readable records, list the others in dataset.skipped
    require_labels: bool = True  # False: records to be diagnosed, which may have no labels (.npz without them)


@dataclass(frozen=True)
class Format:
    """One input format: how to recognise it and read it."""

    name: str
    detect: Callable[[Path], bool]
    read_labels: Callable[[Path, Options], tuple[ECGDataset, int]]
    read: Callable[[Path, Options], ECGDataset]
    source_files: Callable[[Path, Options], list[str | Path]]
    # record ids -> "train"/"val"/"test" for data that comes with its own split (PTB-XL's strat_fold)
    official_split: Callable[[Path, Sequence[str]], np.ndarray] | None = None


def _hefei_files(path: Path, options: Options) -> hefei.HefeiFiles:
    return hefei.find_hefei_files(path, label_file=options.labels)


def _hefei_labels(path: Path, options: Options) -> tuple[ECGDataset, int]:
    files = _hefei_files(path, options)
    dataset = hefei.read_hefei_labels(files)
    return dataset, int(hefei.present_mask(files, dataset.record_ids).sum())


def _hefei_read(path: Path, options: Options) -> ECGDataset:
    return hefei.read_hefei(_hefei_files(path, options), leads=options.leads, length=options.length,
                            fs=options.fs, present_only=options.present_only,
                            skip_bad_records=options.skip_bad_records)


def _hefei_sources(path: Path, options: Options) -> list[str | Path]:
    files = _hefei_files(path, options)
    folder = os.fspath(files.record_dir)
    records = [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".txt")]
    return [files.label_file, *([files.class_file] if files.class_file else []), *records]


def _cinc_task(dataset: ECGDataset, options: Options) -> ECGDataset:
    return dataset if options.task is None else cinc2021.apply_task(dataset, options.task)


def _wfdb_labels(path: Path, options: Options) -> tuple[ECGDataset, int]:
    dataset, present, _ = physionet.read_wfdb_labels(path, options.labels, skip_bad_records=options.skip_bad_records)
    return _cinc_task(dataset, options), int(present.sum())


def _wfdb_read(path: Path, options: Options) -> ECGDataset:
    return _cinc_task(physionet.read_wfdb(path, labels=options.labels, leads=options.leads, length=options.length,
                                          fs=options.fs, present_only=options.present_only,
                                          skip_bad_records=options.skip_bad_records), options)


def _no_labels_csv(path: Path, options: Options) -> None:
    if options.labels is not None:  # would be ignored: PTB-XL's labels are its scp_codes
        raise DataError(f"{path}: --labels does not apply to PTB-XL; its labels are ptbxl_database.csv's "
                        "scp_codes, chosen with --task")


def _ptbxl_labels(path: Path, options: Options) -> tuple[ECGDataset, int]:
    _no_labels_csv(path, options)
    return ptbxl.read_ptbxl_labels(path, options.task, options.fs)


def _ptbxl_read(path: Path, options: Options) -> ECGDataset:
    _no_labels_csv(path, options)
    return ptbxl.read_ptbxl(path, task=options.task, leads=options.leads, length=options.length, fs=options.fs,
                            present_only=options.present_only, skip_bad_records=options.skip_bad_records)


def _npz_read(path: Path, options: Options) -> ECGDataset:
    return npz.read_npz(path, leads=options.leads, length=options.length, fs=options.fs,
                        require_labels=options.require_labels)


FORMATS: list[Format] = [
    Format("npz", npz.looks_like_npz, lambda path, _: npz.read_npz_labels(path), _npz_read, lambda path, _: [path]),
    # Before WFDB: a PTB-XL folder holds WFDB records too, but its labels are in ptbxl_database.csv.
    Format("ptbxl", ptbxl.looks_like_ptbxl, _ptbxl_labels, _ptbxl_read,
           lambda path, o: ptbxl.source_files(path, o.fs), ptbxl.official_split),
    Format("hefei", hefei.looks_like_hefei, _hefei_labels, _hefei_read, _hefei_sources),
    Format("wfdb", physionet.looks_like_wfdb, _wfdb_labels, _wfdb_read, lambda path, _: physionet.source_files(path)),
]


def warn_skipped(skipped: dict[str, str], source: object) -> None:
    """Skipped records are never silent: one warning counting them and quoting the first few."""
    if skipped:
        first = "; ".join(list(skipped.values())[:SKIPPED_SHOWN])
        warnings.warn(printable(f"{source}: skipped {len(skipped)} record(s) that cannot be read (first: {first})"),
                      stacklevel=3)


def _with_classes(dataset: ECGDataset, source: object, require_labels: bool = True) -> ECGDataset:
    """`dataset`, unless no record carries a label where labels are required (nothing to learn or to split by)
    or a class name holds control characters."""
    if dataset.n_classes == 0 and require_labels:
        raise DataError(f"{source}: no record carries a label ({len(dataset)} records, no classes)")
    unprintable = next((name for name in dataset.class_names if not name.isprintable()), None)
    if unprintable is not None:  # class names reach tables, reports and terminals as they are
        raise DataError(f"{source}: class name {quote(unprintable)} holds control characters")
    return dataset


def detect_format(path: Path) -> Format:
    """The first registered format that recognises `path`; an error listing them when none does."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    for fmt in FORMATS:
        if fmt.detect(path):
            return fmt
    raise DataError(f"{path}: not a recognised dataset (formats: {', '.join(f.name for f in FORMATS)}; "
                    "see docs/data.md)")


def _options(labels: PathLike | None, leads: Sequence[str], length: int, fs: int, present_only: bool,
             task: str | None = None, skip_bad_records: bool = False, require_labels: bool = True) -> Options:
    if length <= 0 or fs <= 0:
        raise DataError(f"length ({length}) and fs ({fs}) must be positive")
    if not leads:
        raise DataError("at least one lead must be requested")
    labels = None if labels is None else Path(labels).expanduser().resolve()
    return Options(labels, tuple(leads), int(length), int(fs), bool(present_only), task, bool(skip_bad_records),
                   bool(require_labels))


def _detect_for_task(path: Path, task: str | None) -> Format:
    fmt = detect_format(path)
    tasks.check_task(fmt.name, task, path)
    return fmt


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
    task: str | None = None,
    skip_bad_records: bool = False,
    require_labels: bool = True,
) -> ECGDataset:
    """Read a Hefei folder, a WFDB folder or an `.npz` (detected) into an `ECGDataset` of int16 signals.

    `labels` is an explicit label file (Hefei) or labels CSV (WFDB); `leads` are chosen by name,
    case-insensitively; `length`/`fs` are the target samples and rate; `present_only` skips records listed
    without a signal file; `task` picks a benchmark's classes (`ecg.data.tasks`: PTB-XL's six, CinC 2021's
    scored diagnoses); `skip_bad_records` loads the readable records when some cannot be read and lists the
    others with their reasons in `dataset.skipped` (otherwise one error counts them and quotes the first few),
    a skip always warned about; `require_labels=False` accepts records without labels (to be diagnosed:
    `python -m ecg.predict`), which then have no class. The parsed result is cached under `cache_dir` (default
    `$ECG_CACHE_DIR` or `~/.cache/ecg-autosearch`), keyed by the source files' names, sizes and mtimes and
    these options.
    """
    if path is None:
        raise DataError("no data path given (the synthetic set is ecg.synthetic.load_synthetic)")
    path = Path(path).expanduser().resolve()  # once, so cache keys do not depend on the working directory
    options = _options(labels, leads, length, fs, present_only, task, skip_bad_records, require_labels)
    fmt = _detect_for_task(path, task)
    key = None
    if use_cache:
        directory = Path(cache_dir).expanduser() if cache_dir is not None else cache.default_cache_dir()
        sources = fmt.source_files(path, options)
        if options.labels is not None:
            sources.append(options.labels)
        # task enters the key only when set, so the entries cached before tasks existed stay valid
        key = cache.source_key(sources, {"format": fmt.name, **{k: str(v) for k, v in vars(options).items()
                                                                if not (k == "task" and v is None)
                                                                and not (k == "skip_bad_records" and not v)
                                                                and not (k == "require_labels" and v)}})
        cached = cache.load_cached(directory, key)
        if cached is not None:
            _with_classes(cached, path, options.require_labels)  # an entry written before these checks existed
            warn_empty_classes(cached.labels, cached.class_names, path)
            warn_skipped(cached.skipped, path)
            return cached
    dataset = _with_classes(fmt.read(path, options), path, options.require_labels)
    warn_empty_classes(dataset.labels, dataset.class_names, path)
    warn_skipped(dataset.skipped, path)
    if key is not None:
        try:
            cache.store(directory, key, dataset)
        except OSError as error:  # a full or read-only disk costs the next load time, not this one its data
            warnings.warn(f"could not write the dataset cache in {directory}: {error}", stacklevel=2)
    return dataset


def load_labels(path: PathLike, *, labels: PathLike | None = None, task: str | None = None,
                fs: int = FS, skip_bad_records: bool = False) -> tuple[ECGDataset, int]:
    """Labels, age and sex without reading any signal (signals None), and how many records have a signal file
    (PTB-XL: at the rate `fs` would read). `skip_bad_records` leaves out the records whose header cannot be
    read (WFDB), listed in `dataset.skipped`."""
    path = Path(path).expanduser()
    options = _options(labels, HEFEI_LEADS, N_SAMPLES, fs, True, task, skip_bad_records)
    dataset, present = _detect_for_task(path, task).read_labels(path, options)
    return _with_classes(dataset, path), present


def data_convention(path: PathLike | None, task: str | None = None) -> tasks.Convention:
    """The task, split and selection metric runs on this data follow by default (`ecg.data.tasks`)."""
    if path is None:
        return tasks.convention(None, task)
    fmt = _detect_for_task(Path(path).expanduser(), task)
    return tasks.convention(fmt.name, task)


def resolve_split(path: PathLike | None, split: str | None) -> str:
    """`split` checked against the data ("official" needs data that has one), or the data's default."""
    fmt = None if path is None else detect_format(Path(path).expanduser())
    has_official = fmt is not None and fmt.official_split is not None
    return tasks.resolve_split(None if fmt is None else fmt.name, split, has_official, path)


def official_split(path: PathLike, record_ids: Sequence[str]) -> np.ndarray:
    """"train"/"val"/"test" per record from the data's own split; a DataError for data without one."""
    path = Path(path).expanduser().resolve()
    fmt = detect_format(path)
    if fmt.official_split is None:
        raise DataError(f"{path}: {fmt.name} data has no official split; use --split stratified")
    return fmt.official_split(path, record_ids)
