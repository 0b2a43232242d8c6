"""WFDB (PhysioNet) records: `.hea` headers with `.dat` or `.mat` signals, found recursively, read with wfdb.

Labels, age and sex come from the PhysioNet/CinC header comments (`# Age: 63`, `# Sex: Female`,
`# Dx: 426783006,164889003` SNOMED CT codes, which become the class names, sorted), or from a labels CSV
(`record`, `labels` separated by ';', optional `age`, `sex`) for headers that carry free text.
Signals are read in physical units and brought to Hefei units, rate and length by `ecg.data.scale`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import wfdb
from wfdb.io._signal import BYTES_PER_SAMPLE

from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError
from ecg.data.labels import LabelsCSV, multi_hot, parse_age, parse_sex
from ecg.data.leads import plan_leads
from ecg.data.parallel import parse_all
from ecg.data.scale import fit_length, mv_per_unit, resample, to_hefei_units

MISSING_SHOWN = 5


def looks_like_wfdb(path: Path) -> bool:
    """A `.hea` file, or a folder with one anywhere below it."""
    if path.is_file():
        return path.suffix == ".hea"
    return path.is_dir() and next(path.rglob("*.hea"), None) is not None


def find_headers(path: Path) -> list[Path]:
    """Every `.hea` below `path` (or `path` itself), sorted, so record order does not depend on the file system."""
    headers = [path] if path.is_file() else sorted(path.rglob("*.hea"))
    if not headers:
        raise DataError(f"{path}: no WFDB .hea headers found")
    return headers


def record_ids(path: Path, headers: Sequence[Path]) -> list[str]:
    """Ids are header paths relative to `path` without '.hea' (just the name for a flat folder)."""
    root = path.parent if path.is_file() else path
    return [header.relative_to(root).with_suffix("").as_posix() for header in headers]


def _comment_fields(comments: Sequence[str]) -> dict[str, str]:
    fields = {}
    for comment in comments:
        key, sep, value = comment.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


@dataclass(frozen=True)
class HeaderLabels:
    """What a header says about its record, without reading the signal."""

    labels: list[str]
    age: float
    sex: float
    signals_present: bool


def _header_text(header: Path) -> tuple[list[str], list[str]]:
    """Signal file names and comment lines of a header, read as text.

    The labels pass reads only this: wfdb.rdheader parses every signal line through pandas (about 20 ms a
    header), which would make `ecg.inspect` on 20,000 records take minutes. Signals are still read by wfdb.
    """
    try:
        lines = header.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise DataError(f"{header}: cannot read the header ({error})") from None
    comments = [line.lstrip("#").strip() for line in lines if line.lstrip().startswith("#")]
    body = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    try:
        n_sig = int(body[0].split()[1])
        if n_sig < 0 or len(body) < 1 + n_sig:
            raise ValueError
        files = [line.split()[0] for line in body[1:1 + n_sig]]
    except (IndexError, ValueError):
        raise DataError(f"{header}: not a WFDB header (record line 'NAME N_SIG FS N_SAMPLES', then one line "
                        "per signal)") from None
    return files, comments


def read_header_labels(header: Path) -> HeaderLabels:
    """Dx codes, age and sex from the header comments, and whether its signal files exist."""
    files, comments = _header_text(header)
    fields = _comment_fields(comments)
    codes = [code.strip() for code in fields.get("dx", "").split(",") if code.strip()]
    present = all((header.parent / name).exists() for name in set(files))
    return HeaderLabels(codes, parse_age(fields.get("age"), str(header)), parse_sex(fields.get("sex"), str(header)),
                        present)


def _check_signal_files(header: Path, head: wfdb.Record) -> None:
    """A signal file shorter than its header says: a clear error (wfdb would fail with a bare reshape error)."""
    per_file: dict[str, list[int]] = {}
    for channel, name in enumerate(head.file_name):
        per_file.setdefault(name, []).append(channel)
    for name, channels in per_file.items():
        fmt = head.fmt[channels[0]]
        offset = (head.byte_offset or [0] * head.n_sig)[channels[0]] or 0
        per_sample = BYTES_PER_SAMPLE.get(fmt)
        if not per_sample:  # compressed formats (508/516/524) have no fixed size
            continue
        expected = offset + math.ceil(head.sig_len * len(channels) * per_sample)
        signal_file = header.parent / name
        if not signal_file.exists():
            raise DataError(f"{header}: signal file {name} is missing")
        actual = signal_file.stat().st_size
        if actual < expected:
            raise DataError(f"{header}: header says {head.sig_len} samples x {len(channels)} signals in {name} "
                            f"({expected} bytes) but the file has {actual} bytes")


def read_signal(header: Path, leads: Sequence[str] = HEFEI_LEADS, length: int = N_SAMPLES,
                fs: int = FS) -> np.ndarray:
    """One record as int16 `[len(leads), length]` on the Hefei scale, at `fs` Hz."""
    base = str(header.with_suffix(""))
    try:
        record = wfdb.rdrecord(base, physical=True)  # every channel: one header parse instead of two
    except Exception as error:  # wfdb raises bare ValueError/IndexError/... on bad files; say what is wrong
        try:
            head = wfdb.rdheader(base)
        except Exception:
            raise DataError(f"{header}: not a readable WFDB header ({error})") from None
        _check_signal_files(header, head)
        raise DataError(f"{header}: wfdb could not read the signal ({error})") from None
    plan = plan_leads(record.sig_name or [], leads, str(header), header.stem)
    if record.p_signal.shape[0] != record.sig_len:
        raise DataError(f"{header}: header says {record.sig_len} samples, the signal file holds "
                        f"{record.p_signal.shape[0]}")
    millivolts = np.zeros((record.n_sig, record.sig_len))
    for channel in plan.sources:
        factor = mv_per_unit(record.units[channel])
        if factor is None:
            raise DataError(f"{header}: lead {record.sig_name[channel]} is in unit {record.units[channel]!r}, "
                            "not a voltage")
        millivolts[channel] = record.p_signal[:, channel] * factor
    millivolts = plan.apply(millivolts)
    millivolts = np.nan_to_num(millivolts, nan=0.0)  # WFDB "no value" samples -> baseline
    return to_hefei_units(fit_length(resample(millivolts, record.fs, fs), length))


def _code_order(code: str) -> tuple[bool, int, str]:
    """SNOMED codes in numeric order, any non-numeric label after them."""
    return (not code.isdigit(), int(code) if code.isdigit() else 0, code)


def read_wfdb_labels(path: Path, labels: Path | None = None,
                     present_only: bool = True) -> tuple[ECGDataset, np.ndarray, list[Path]]:
    """Labels-only dataset, the mask of records with signal files, and the header paths (in record order)."""
    headers = find_headers(path)
    ids = record_ids(path, headers)
    infos = [read_header_labels(h) for h in headers]
    present = np.array([info.signals_present for info in infos], dtype=bool)
    if labels is None:
        label_lists = [info.labels for info in infos]
        ages = [info.age for info in infos]
        sexes = [info.sex for info in infos]
        class_names = sorted({c for lst in label_lists for c in lst}, key=_code_order)
    else:
        table = LabelsCSV(labels)
        by_name = {Path(i).name: i for i in ids}
        unknown = [r for r in table.rows if r not in by_name and r not in ids]
        if unknown and not present_only:
            raise DataError(f"{table.path}: {len(unknown)} record(s) listed have no WFDB header under {path} "
                            f"(first: {', '.join(unknown[:MISSING_SHOWN])}); pass present_only=True to skip them")
        rows = []
        for rid in ids:
            key = rid if rid in table.rows else Path(rid).name
            if key not in table.rows:
                raise DataError(f"{table.path}: no row for record {rid!r} (found under {path})")
            rows.append(table.rows[key])
        label_lists = [r[0] for r in rows]
        ages = [r[1] for r in rows]
        sexes = [r[2] for r in rows]
        class_names = table.class_names()
    dataset = ECGDataset(signals=None, age=np.array(ages, np.float32), sex=np.array(sexes, np.float32),
                         labels=multi_hot(label_lists, class_names), class_names=class_names, record_ids=ids,
                         lead_names=list(HEFEI_LEADS), fs=FS, units_per_mv=UNITS_PER_MV)
    return dataset, present, headers


def read_wfdb(path: Path, *, labels: Path | None = None, leads: Sequence[str] = HEFEI_LEADS,
              length: int = N_SAMPLES, fs: int = FS, present_only: bool = False) -> ECGDataset:
    """Every record below `path`, signals parsed on all cores."""
    dataset, present, headers = read_wfdb_labels(path, labels, present_only)
    if not present.all():
        if not present_only:
            missing = [h.name for h, ok in zip(headers, present) if not ok]
            raise DataError(f"{path}: {len(missing)} of {len(headers)} headers have no signal file "
                            f"(first: {', '.join(missing[:MISSING_SHOWN])}); pass present_only=True to skip them")
        dataset = dataset.subset(present)
        headers = [h for h, ok in zip(headers, present) if ok]
    dataset.signals = parse_all(partial(read_signal, leads=tuple(leads), length=length, fs=fs), headers,
                                (len(leads), length))
    dataset.lead_names = list(leads)
    dataset.fs = fs
    return dataset


def source_files(path: Path) -> list[Path]:
    """Headers and the signal files next to them (what keys the cache)."""
    headers = find_headers(path)
    files = list(headers)
    for header in headers:
        for suffix in (".dat", ".mat"):
            candidate = header.with_suffix(suffix)
            if candidate.exists():
                files.append(candidate)
    return files


