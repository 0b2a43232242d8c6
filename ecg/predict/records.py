"""Records to diagnose: read by the project's readers (`ecg.data.loader`: Hefei folder, WFDB folder, PTB-XL
folder, `.npz`) at the run's leads, rate and length, labelled or not; or the run's own split of its records.

Before any signal is read, the first record's lead names are checked against the leads the model takes (the
readers derive III, aVR, aVL and aVF from I and II), so that data lacking some is refused in one line naming
every lead it lacks, not as one unreadable record after another.
"""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from ecg.data.dataset import ECGDataset
from ecg.data.errors import DataError
from ecg.data.leads import plan_leads
from ecg.predict.manifest import Manifest
from ecg.predict.model import PredictError
from ecg.run_folder import SPLIT, RunFolder, RunFolderError

SPLITS = ("train", "val", "test")


def first_record_leads(path: Path) -> list[str] | None:
    """The lead names of the first record under `path` (None when the format does not name them: an .npz
    without `lead_names`, which the reader then takes in the requested order)."""
    from ecg.data import loader
    from ecg.data.hefei import find_hefei_files, read_hefei_labels, record_path

    fmt = loader.detect_format(path).name
    if fmt == "npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return [str(x) for x in archive["lead_names"]] if "lead_names" in archive.files else None
        except (OSError, ValueError, zipfile.BadZipFile):
            return None  # the reader says what is wrong with the file
    if fmt == "hefei":
        files = find_hefei_files(path)
        for record_id in read_hefei_labels(files).record_ids:
            file = record_path(files, record_id)
            if file.is_file():
                with open(file, "rb") as handle:
                    return handle.readline().decode("utf-8-sig", errors="replace").split()
        return None
    import wfdb

    header = path if path.is_file() and path.suffix == ".hea" else next(Path(path).rglob("*.hea"), None)
    if header is None:
        return None
    try:
        return list(wfdb.rdheader(str(header.with_suffix(""))).sig_name or [])
    except Exception:  # a header wfdb cannot parse: the reader names it, record by record
        return None


def missing_leads(available: list[str], needed: list[str]) -> list[str]:
    """The leads of `needed` that cannot be read or derived from `available`."""
    missing = []
    for lead in needed:
        try:
            plan_leads(available, [lead], "")
        except DataError:
            missing.append(lead)
    return missing


def read_records(path: Path, manifest: Manifest, *, skip_bad_records: bool = False) -> ECGDataset:
    """The records at `path` at the manifest's leads, rate and samples per record (resampled, cut or padded by
    the readers). Their own labels, if any, are not used. PredictError, one line, for data that cannot be read,
    lacks a lead the model takes, or (with `skip_bad_records`) has no readable record left."""
    path = Path(path).expanduser()
    try:
        available = first_record_leads(path)
        if available is not None:
            missing = missing_leads(available, manifest.leads)
            if missing:
                raise PredictError(f"{path}: the records lack lead(s) {', '.join(missing)} that the model takes "
                                   f"(it takes {' '.join(manifest.leads)}; the first record has "
                                   f"{' '.join(available) or 'none'})")
        from ecg.data.loader import load_dataset

        with warnings.catch_warnings():
            # The records' own classes are not the model's: classes without a record there mean nothing here.
            warnings.filterwarnings("ignore", message=r".*class\(es\) have no record")
            # Skipped records are reported by the caller, once.
            warnings.filterwarnings("ignore", message=r".*skipped \d+ record\(s\) that cannot be read")
            records = load_dataset(path, leads=manifest.leads, fs=manifest.fs, length=manifest.length,
                                   skip_bad_records=skip_bad_records, require_labels=False)
    except (DataError, OSError, ValueError) as err:
        if isinstance(err, PredictError):
            raise
        raise PredictError(" ".join(str(err).split())) from None
    if not len(records):
        raise PredictError(f"{path}: no readable record left ({len(records.skipped)} skipped)")
    return records


def run_split(folder: RunFolder, manifest: Manifest, name: str) -> ECGDataset:
    """The run's own records of split `name` (train, val, test), as its search read and split them, with their
    labels in the manifest's class order. PredictError, one line, when the data changed since the run."""
    from ecg.data.source import load, split

    if name not in SPLITS:
        raise PredictError(f"--split must be one of {', '.join(SPLITS)}, got {name!r}")
    try:
        spec = folder.data_spec()
        dataset = load(spec)
        parts = split(dataset, seed=int(folder.record.seed or 0), existing=folder.file(SPLIT), spec=spec)
    except (DataError, RunFolderError, OSError) as err:
        raise PredictError(f"{folder.path}: cannot load the run's records again: {' '.join(str(err).split())}") \
            from None
    if manifest.fingerprint is not None and parts.fingerprint != manifest.fingerprint:
        raise PredictError(f"{folder.path}: the run's records changed since it ran (fingerprint "
                           f"{parts.fingerprint} != {manifest.fingerprint}); its {name} split cannot be rebuilt")
    records = getattr(parts, name)
    if list(records.class_names) != list(manifest.classes):
        raise PredictError(f"{folder.path}: the records' classes differ from the model's")
    return records
