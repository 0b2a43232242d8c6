"""NumPy `.npz`: `signals [N, leads, T]`, `labels [N, C]`, `class_names [C]`, optional `age`, `sex`,
`record_ids`, `lead_names`, `fs`.

Integer signals are taken to be on the Hefei scale already; float signals are taken to be millivolts and
converted (`ecg.data.scale`). Without `lead_names` the file must hold exactly the requested number of leads,
in the requested order. NaN anywhere in the signals is an error naming the file and the first record and lead.
"""
from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError
from ecg.data.leads import plan_leads
from ecg.data.scale import fit_length, resample, to_hefei_units

REQUIRED = ("signals", "labels", "class_names")


def looks_like_npz(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz"


def _open(path: Path) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz ({error})") from None
    missing = [key for key in REQUIRED if key not in archive.files]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)} (has: {', '.join(archive.files)})")
    return archive


def _labels_only(path: Path, archive: np.lib.npyio.NpzFile) -> ECGDataset:
    labels = np.asarray(archive["labels"])
    n = len(labels)
    if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: 'labels' must be a 0/1 array [N, C], got shape {labels.shape}")
    ids = [str(r) for r in archive["record_ids"]] if "record_ids" in archive.files else [str(i) for i in range(n)]
    missing = np.full(n, np.nan, dtype=np.float32)
    return ECGDataset(signals=None,
                      age=archive["age"] if "age" in archive.files else missing,
                      sex=archive["sex"] if "sex" in archive.files else missing.copy(),
                      labels=labels, class_names=[str(c) for c in archive["class_names"]], record_ids=ids,
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
             fs: int = FS) -> ECGDataset:
    """The whole file, signals brought to int16 Hefei units, `leads`, `fs` and `length`."""
    with _open(path) as archive:
        try:
            dataset = _labels_only(path, archive)
        except ValueError as error:
            raise DataError(f"{path}: {error}") from None
        signals = archive["signals"]
        file_leads = [str(x) for x in archive["lead_names"]] if "lead_names" in archive.files else None
        file_fs = float(archive["fs"]) if "fs" in archive.files else float(fs)
    if signals.ndim != 3 or len(signals) != len(dataset):
        raise DataError(f"{path}: 'signals' shape {signals.shape} is not [{len(dataset)}, leads, samples]")
    if np.issubdtype(signals.dtype, np.floating):
        bad = np.argwhere(np.isnan(signals))
        if len(bad):
            record, lead, sample = bad[0]
            raise DataError(f"{path}: NaN in 'signals' ({len(bad)} values; first at record {record} "
                            f"'{dataset.record_ids[record]}', lead {lead}, sample {sample})")
    elif not np.issubdtype(signals.dtype, np.integer):
        raise DataError(f"{path}: 'signals' has dtype {signals.dtype}, expected integers or floats")
    signals = _select_leads(path, signals, file_leads, leads)
    if file_fs != fs or signals.shape[2] != length:
        millivolts = signals / UNITS_PER_MV if np.issubdtype(signals.dtype, np.integer) else signals
        signals = to_hefei_units(fit_length(resample(millivolts, file_fs, fs), length))
    elif np.issubdtype(signals.dtype, np.floating):
        signals = to_hefei_units(signals)
    elif signals.min(initial=0) < -32768 or signals.max(initial=0) > 32767:
        raise DataError(f"{path}: integer signals outside the int16 range of the Hefei scale")
    dataset.signals = np.ascontiguousarray(signals, dtype=np.int16)
    dataset.lead_names = list(leads)
    dataset.fs = fs
    return dataset


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
    millivolts = signals / UNITS_PER_MV if np.issubdtype(signals.dtype, np.integer) else signals
    return np.einsum("ol,nlt->not", plan.weights, millivolts)
