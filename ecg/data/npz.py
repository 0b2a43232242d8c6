"""NumPy `.npz`: `signals [N, leads, T]`, `labels [N, C]`, `class_names [C]`, optional `age`, `sex`,
`record_ids`, `lead_names`, `fs`, `units`. Records to be diagnosed (`python -m ecg.predict`) may come without
`labels` and `class_names` (`require_labels=False`).

Without `units`, integer signals are taken to be on the Hefei scale already and float signals to be
millivolts; with `units` (a string such as 'uV', 'mV' or 'V') the signals are in that unit, whatever their
dtype, and are converted (`ecg.data.scale`). Without `lead_names` the file must hold exactly the requested
number of leads, in the requested order. NaN or inf anywhere in the signals is an error naming the file and
the first record, lead and sample; so is any value beyond the int16 range of the Hefei scale (+-159.9 mV),
since clipping it would load a wrong signal (typically uV saved as floats without `units`).
"""
from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecg import values
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError
from ecg.data.leads import plan_leads
from ecg.data.scale import INT16_MAX, fit_length, mv_per_unit, resample, to_hefei_units
from ecg.values import clip, quote

REQUIRED = ("signals", "labels", "class_names")
LABELS = ("labels", "class_names")


def looks_like_npz(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz"


def _open(path: Path, require_labels: bool = True) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz ({clip(error)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a lone .npy saved under an .npz name
        raise DataError(f"{path}: not an .npz archive of named arrays (a single array)")
    missing = [key for key in REQUIRED if key not in archive.files]
    if not require_labels and set(missing) >= set(LABELS):  # unlabelled records: both absent, never one alone
        missing = [key for key in missing if key not in LABELS]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)} (has: {clip(', '.join(archive.files))})")
    return archive


def _field(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """`archive[key]`; an object array (np.load refuses it rather than unpickle it) or a damaged member is one
    DataError naming the array."""
    try:
        return np.asarray(archive[key])
    except ValueError:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise DataError(f"{path}: {key!r} is an array of Python objects, which is never unpickled; save it as "
                        "numbers or text") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: cannot read {key!r} ({clip(error)})") from None


def _names(path: Path, archive: np.lib.npyio.NpzFile, key: str, count: int) -> list[str]:
    """A 1-D array of `count` distinct names (class names, record ids, lead names) as text."""
    array = _field(path, archive, key)
    if array.ndim != 1 or len(array) != count:
        raise DataError(f"{path}: {key!r} has shape {array.shape}, expected ({count},)")
    names = [str(name) for name in array.tolist()]
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise DataError(f"{path}: {key!r} holds {quote(name)} twice (at {seen[name]} and {index})")
        seen[name] = index
    return names


def _per_record(path: Path, archive: np.lib.npyio.NpzFile, key: str, n: int) -> np.ndarray | None:
    """The optional field `key` with one value per record, or None when the archive has none."""
    if key not in archive.files:
        return None
    array = _field(path, archive, key)
    if array.shape != (n,):
        raise DataError(f"{path}: {key!r} has shape {array.shape}, expected ({n},)")
    return array


def _ages(path: Path, archive: np.lib.npyio.NpzFile, ids: Sequence[str]) -> np.ndarray:
    """'age' in years (NaN missing), each checked as `ecg.values.age` checks it."""
    array = _per_record(path, archive, "age", len(ids))
    if array is None:
        return np.full(len(ids), np.nan, dtype=np.float32)
    ages = np.empty(len(ids), dtype=np.float32)
    for index, value in enumerate(array.tolist()):
        try:
            ages[index] = values.age(value)
        except ValueError as error:
            raise DataError(f"{path}: record {index} {quote(ids[index])}: {error}") from None
    return ages


def _sexes(path: Path, archive: np.lib.npyio.NpzFile, ids: Sequence[str]) -> np.ndarray:
    """'sex': 1 male, 0 female, NaN missing; anything else is refused, naming the first such record."""
    array = _per_record(path, archive, "sex", len(ids))
    if array is None:
        return np.full(len(ids), np.nan, dtype=np.float32)
    try:
        values.numeric_dtype(array.dtype, "'sex'", allow_bool=True)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None
    sex = array.astype(np.float32)
    bad = np.flatnonzero(~(np.isnan(sex) | (sex == 0) | (sex == 1)))
    if len(bad):
        raise DataError(f"{path}: record {bad[0]} {quote(ids[bad[0]])}: sex {quote(array[bad[0]])} is not 1 "
                        "(male), 0 (female) or NaN (missing)")
    return sex


def _labels_only(path: Path, archive: np.lib.npyio.NpzFile) -> ECGDataset:
    if "labels" not in archive.files:  # unlabelled records (require_labels=False): no class at all
        n = len(_field(path, archive, "record_ids" if "record_ids" in archive.files else "signals"))
        labels = np.zeros((n, 0), dtype=np.uint8)
    else:
        labels = _field(path, archive, "labels")
        n = len(labels) if labels.ndim else 0
    if n == 0:
        raise DataError(f"{path}: holds no records ('labels' has shape {labels.shape})")
    try:
        values.numeric_dtype(labels.dtype, "'labels'", allow_bool=True)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None
    if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: 'labels' must be a 0/1 array [N, C], got shape {labels.shape}")
    ids = _names(path, archive, "record_ids", n) if "record_ids" in archive.files else [str(i) for i in range(n)]
    class_names = _names(path, archive, "class_names", labels.shape[1]) if "class_names" in archive.files else []
    return ECGDataset(signals=None, age=_ages(path, archive, ids), sex=_sexes(path, archive, ids),
                      labels=labels, class_names=class_names,
                      record_ids=ids, lead_names=list(HEFEI_LEADS), fs=FS, units_per_mv=UNITS_PER_MV)


def read_npz_labels(path: Path) -> tuple[ECGDataset, int]:
    """Labels-only dataset; every record of an .npz has its signal."""
    with _open(path) as archive:
        dataset = _labels_only(path, archive)
    return dataset, len(dataset)


def _file_rate(path: Path, archive: np.lib.npyio.NpzFile, fs: int) -> float:
    """The records' rate: the 'fs' entry (one number, as `ecg.values.rate` checks it), else `fs`."""
    if "fs" not in archive.files:
        return float(fs)
    array = _field(path, archive, "fs")
    if array.size != 1:
        raise DataError(f"{path}: 'fs' must be one rate for every record, got shape {array.shape}")
    try:
        return values.rate(array.reshape(-1)[0])
    except ValueError as error:
        raise DataError(f"{path}: 'fs' {error}") from None


def read_npz(path: Path, *, leads: Sequence[str] = HEFEI_LEADS, length: int = N_SAMPLES,
             fs: int = FS, require_labels: bool = True) -> ECGDataset:
    """The whole file, signals brought to int16 Hefei units, `leads`, `fs` and `length`; without
    `require_labels`, a file without `labels` and `class_names` gives records with no class."""
    with _open(path, require_labels) as archive:
        dataset = _labels_only(path, archive)
        signals = _field(path, archive, "signals")
        if signals.ndim != 3 or len(signals) != len(dataset):
            raise DataError(f"{path}: 'signals' shape {signals.shape} is not [{len(dataset)}, leads, samples]")
        if signals.shape[2] == 0:
            raise DataError(f"{path}: 'signals' holds no samples (shape {signals.shape})")
        try:
            values.numeric_dtype(signals.dtype, "'signals'")
        except ValueError as error:
            raise DataError(f"{path}: {error}") from None
        file_leads = _names(path, archive, "lead_names", signals.shape[1]) if "lead_names" in archive.files else None
        file_fs = _file_rate(path, archive, fs)
        factor, units = _units(path, archive, signals)
    if file_fs != fs:  # only what the first `length` samples at `fs` need, as the WFDB reader reads
        signals = signals[..., :math.ceil(length * file_fs / fs)]
    if np.issubdtype(signals.dtype, np.floating):
        _check_finite(path, signals, dataset.record_ids)
    signals = _select_leads(path, signals, file_leads, leads)
    if factor is None:  # integers on the Hefei scale
        if signals.min(initial=0) < -32768 or signals.max(initial=0) > 32767:
            raise DataError(f"{path}: integer signals outside the int16 range of the Hefei scale "
                            "(if they are in a physical unit, say which with a 'units' array: 'uV', 'mV' or 'V')")
        if file_fs == fs and signals.shape[2] == length:  # derived limb leads (floats) rounded in Hefei units
            signals = np.clip(np.rint(signals), -32768, 32767).astype(np.int16)
        else:
            signals = to_hefei_units(fit_length(resample(signals / UNITS_PER_MV, file_fs, fs), length))
    else:
        millivolts = signals * factor
        _check_range(path, millivolts, units)
        signals = to_hefei_units(fit_length(resample(millivolts, file_fs, fs), length))
    dataset.signals = np.ascontiguousarray(signals, dtype=np.int16)
    dataset.lead_names = list(leads)
    dataset.fs = fs
    return dataset


def _units(path: Path, archive: np.lib.npyio.NpzFile, signals: np.ndarray) -> tuple[float | None, str]:
    """mV per signal value (None: integers already on the Hefei scale) and the unit's name."""
    if "units" not in archive.files:
        return (None, "Hefei units") if np.issubdtype(signals.dtype, np.integer) else (1.0, "mV")
    array = _field(path, archive, "units")
    units = str(array.reshape(-1)[0]) if array.size else ""
    factor = mv_per_unit(units)
    if factor is None:
        raise DataError(f"{path}: 'units' is {quote(units)}; use 'uV', 'mV' or 'V'")
    return factor, units


def _check_finite(path: Path, signals: np.ndarray, record_ids: Sequence[str]) -> None:
    bad = np.argwhere(~np.isfinite(signals))
    if len(bad):
        record, lead, sample = bad[0]
        kind = "NaN" if np.isnan(signals[record, lead, sample]) else "inf"
        raise DataError(f"{path}: {kind} in 'signals' ({len(bad)} values; first at record {record} "
                        f"'{record_ids[record]}', lead {lead}, sample {sample})")


def _check_range(path: Path, millivolts: np.ndarray, units: str) -> None:
    """Values the int16 Hefei scale cannot hold are refused, never clipped: the unit is most likely wrong."""
    limit = (INT16_MAX + 0.5) / UNITS_PER_MV
    outside = int(np.count_nonzero(np.abs(millivolts) > limit))
    if outside:
        peak = float(np.abs(millivolts).max())
        raise DataError(f"{path}: {outside / millivolts.size:.2%} of the signal values ({outside}) lie beyond "
                        f"+-{limit:.1f} mV, the int16 range of the Hefei scale (largest {peak:.4g} mV read as "
                        f"{units}); if the signals are not in {units}, state their unit with a 'units' array "
                        "in the .npz ('uV', 'mV' or 'V')")


def _select_leads(path: Path, signals: np.ndarray, file_leads: list[str] | None,
                  leads: Sequence[str]) -> np.ndarray:
    """`signals [N, len(leads), T]`: chosen by name (limb leads derived from I and II when absent)."""
    if file_leads is None:
        if signals.shape[1] != len(leads):
            raise DataError(f"{path}: {signals.shape[1]} leads and no 'lead_names' array; cannot choose "
                            f"{len(leads)} leads ({' '.join(leads)}) by name")
        return signals
    plan = plan_leads(file_leads, leads, str(path))
    if plan.direct is not None:
        return signals[:, plan.direct]
    return np.einsum("ol,nlt->not", plan.weights, signals.astype(np.float64))  # in the file's unit
