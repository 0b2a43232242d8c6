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

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError, excerpt
from ecg.data.leads import plan_leads
from ecg.data.scale import INT16_MAX, fit_length, mv_per_unit, resample, to_hefei_units

REQUIRED = ("signals", "labels", "class_names")
LABELS = ("labels", "class_names")


def looks_like_npz(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz"


def _open(path: Path, require_labels: bool = True) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz ({error})") from None
    missing = [key for key in REQUIRED if key not in archive.files]
    if not require_labels and set(missing) >= set(LABELS):  # unlabelled records: both absent, never one alone
        missing = [key for key in missing if key not in LABELS]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)} (has: {', '.join(archive.files)})")
    return archive


def _labels_only(path: Path, archive: np.lib.npyio.NpzFile) -> ECGDataset:
    if "labels" not in archive.files:  # unlabelled records (require_labels=False): no class at all
        n = len(archive["record_ids"]) if "record_ids" in archive.files else len(archive["signals"])
        labels = np.zeros((n, 0), dtype=np.uint8)
        class_names: list[str] = []
    else:
        labels = np.asarray(archive["labels"])
        class_names = [str(c) for c in archive["class_names"]]
    n = len(labels)
    if n == 0:
        raise DataError(f"{path}: holds no records ('labels' has shape {labels.shape})")
    if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: 'labels' must be a 0/1 array [N, C], got shape {labels.shape}")
    ids = [str(r) for r in archive["record_ids"]] if "record_ids" in archive.files else [str(i) for i in range(n)]
    missing = np.full(n, np.nan, dtype=np.float32)
    return ECGDataset(signals=None,
                      age=archive["age"] if "age" in archive.files else missing,
                      sex=archive["sex"] if "sex" in archive.files else missing.copy(),
                      labels=labels, class_names=class_names, record_ids=ids,
                      lead_names=list(HEFEI_LEADS), fs=FS, units_per_mv=UNITS_PER_MV)


def read_npz_labels(path: Path) -> tuple[ECGDataset, int]:
    """Labels-only dataset; every record of an .npz has its signal."""
    with _open(path) as archive:
        try:
            dataset = _labels_only(path, archive)
        except ValueError as error:
            raise DataError(f"{path}: {error}") from None
    return dataset, len(dataset)


def read_npz(path: Path, *, leads: Sequence[str] = HEFEI_LEADS, length: int = N_SAMPLES,
             fs: int = FS, require_labels: bool = True) -> ECGDataset:
    """The whole file, signals brought to int16 Hefei units, `leads`, `fs` and `length`; without
    `require_labels`, a file without `labels` and `class_names` gives records with no class."""
    with _open(path, require_labels) as archive:
        try:
            dataset = _labels_only(path, archive)
        except ValueError as error:
            raise DataError(f"{path}: {error}") from None
        signals = archive["signals"]
        file_leads = [str(x) for x in archive["lead_names"]] if "lead_names" in archive.files else None
        file_fs = float(archive["fs"]) if "fs" in archive.files else float(fs)
        factor, units = _units(path, archive, signals)
    if signals.ndim != 3 or len(signals) != len(dataset):
        raise DataError(f"{path}: 'signals' shape {signals.shape} is not [{len(dataset)}, leads, samples]")
    if not (np.issubdtype(signals.dtype, np.floating) or np.issubdtype(signals.dtype, np.integer)):
        raise DataError(f"{path}: 'signals' has dtype {signals.dtype}, expected integers or floats")
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
    units = str(np.asarray(archive["units"]).reshape(-1)[0]) if archive["units"].size else ""
    factor = mv_per_unit(units)
    if factor is None:
        raise DataError(f"{path}: 'units' is {excerpt(units)}; use 'uV', 'mV' or 'V'")
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
