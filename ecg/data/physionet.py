"""WFDB (PhysioNet) records: `.hea` headers with `.dat` or `.mat` signals, found recursively, read with wfdb.

Labels, age and sex come from the PhysioNet/CinC header comments (`# Age: 63`, `# Sex: Female`,
`# Dx: 426783006,164889003` SNOMED CT codes, which become the class names, sorted), or from a labels CSV
(`record`, `labels` separated by ';', optional `age`, `sex`) for headers that carry free text.
Signals are read in physical units and brought to Hefei units, rate and length by `ecg.data.scale`; only
the first `length / fs` seconds of a longer record are read.

Headers are taken as the PhysioNet/CinC 2020-2021 releases distribute them (docs/data.md lists the forms):
wfdb reads all of them except a record line that names the signal file (`A0001.mat 12 500 7500`), which
it refuses and the Challenge's helper code accepts; that one is read through a normalised copy.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import wfdb
from wfdb.io._signal import BYTES_PER_SAMPLE

from ecg import values
from ecg.data.bad_records import HINT, keep_readable, summary
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError
from ecg.data.files import check_regular, read_bytes
from ecg.data.labels import LabelsCSV, multi_hot, parse_age, parse_sex
from ecg.data.leads import plan_leads
from ecg.data.parallel import parse_each
from ecg.data.scale import fit_length, mv_per_unit, resample, to_hefei_units
from ecg.values import clip, quote

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


# The record line's first field as wfdb 4.x accepts it (a name, optionally '/segments'). PhysioNet/CinC
# 2020-2021 headers also name the signal file there ('A0001.mat 12 500 7500'), which the Challenge's own
# helper code reads (it splits the line on spaces) and wfdb refuses ("invalid syntax in record line").
WFDB_RECORD_NAME = re.compile(r"[-\w]+(/\d*)?")
NO_LABEL = {"", "unknown", "nan", "none", "na"}  # '# Dx: Unknown' and the like: a record with no label


@dataclass(frozen=True)
class HeaderText:
    """A header as text: what the labels pass, the length report and the normalised copy need."""

    lines: list[str]  # every non-blank line, line ends removed (CRLF or LF)
    n_sig: int
    fs: float | None
    n_samples: int | None
    files: list[str]  # the signal file of each signal line
    comments: list[str]

    @property
    def wfdb_refuses(self) -> bool:
        """True for a record line wfdb cannot parse but the Challenge's tools read ('NAME.mat 12 500 5000')."""
        return WFDB_RECORD_NAME.fullmatch(self.lines[0].split()[0]) is None

    def normalised(self) -> str:
        """The header with the record line's first field made a plain name ('A0001.mat' -> 'A0001')."""
        name, rest = (self.lines[0].split(maxsplit=1) + [""])[:2]
        name = re.sub(r"[^-\w]", "_", re.sub(r"\.(mat|dat|hea)$", "", name, flags=re.IGNORECASE))
        return "\n".join([f"{name} {rest}", *self.lines[1:]]) + "\n"


def _record_line_numbers(header: Path, fields: list[str]) -> tuple[float | None, int | None]:
    """The rate ('500', '500/1000(0)', '257.0': the part before '/') and the samples of a record line, each
    None when absent; a DataError quoting a field that is not a plausible one (rate 0, text, -5 samples)."""
    fs = n_samples = None
    if len(fields) > 2:
        try:
            fs = values.rate(fields[2].split("/", 1)[0])
        except ValueError as error:
            raise DataError(f"{header}, line 1: {error}") from None
    if len(fields) > 3:
        try:
            n_samples = int(values.number(fields[3], low=0, integer=True))
        except ValueError as error:
            raise DataError(f"{header}, line 1: the number of samples {error}") from None
    return fs, n_samples


def read_header_text(header: Path) -> HeaderText:
    """The header's record line, signal files and comments, read as text (no wfdb, no signal file).

    The labels pass reads only this: wfdb.rdheader parses every signal line through pandas, which would make
    `ecg.inspect` on a 20,000-record folder take minutes. Signals are still read by wfdb.
    A record line whose signal count, rate or length cannot be right is refused here, naming the value.
    """
    text = read_bytes(header).decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]  # splitlines: LF, CRLF and CR
    comments = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    try:
        fields = body[0].split()
        n_sig = int(fields[1])
        if n_sig < 1:
            raise ValueError
        files = [line.split()[0] for line in body[1:1 + n_sig]]
    except (IndexError, ValueError):
        first = quote(body[0]) if body else "nothing but comments"
        raise DataError(f"{header}: not a WFDB header (record line 'NAME N_SIG FS N_SAMPLES', then one line "
                        f"per signal; line 1: {first})") from None
    if len(body) - 1 != n_sig and "/" not in fields[0]:  # a multi-segment header lists segments instead
        raise DataError(f"{header}: the record line says {n_sig} signals, but {len(body) - 1} signal line(s) "
                        "follow it")
    fs, n_samples = _record_line_numbers(header, fields)
    return HeaderText([*body[:1 + n_sig], *(f"# {c}" for c in comments)], n_sig, fs, n_samples, files, comments)


@dataclass(frozen=True)
class HeaderLabels:
    """What a header says about its record, without reading the signal."""

    labels: list[str]
    age: float
    sex: float
    signals_present: bool
    fs: float | None = None
    n_samples: int | None = None


def read_header_labels(header: Path) -> HeaderLabels:
    """Dx codes, age and sex from the header comments, the rate and length, and whether its signal files exist.

    A missing `# Dx:` or `# Dx: Unknown` is a record with no label; comment lines other than Age, Sex and Dx
    (`# Rx:`, `# Hx:`, free text) are ignored.
    """
    text = read_header_text(header)
    fields = _comment_fields(text.comments)
    codes = [code.strip() for code in fields.get("dx", "").split(",") if code.strip().lower() not in NO_LABEL]
    present = all((header.parent / name).exists() for name in set(text.files))
    return HeaderLabels(codes, parse_age(fields.get("age"), str(header)), parse_sex(fields.get("sex"), str(header)),
                        present, text.fs, text.n_samples)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.symlink(source.resolve(), target)
    except OSError:  # no symlinks here (some Windows setups, some file systems): copy instead
        shutil.copyfile(source, target)


@contextmanager
def wfdb_record_path(header: Path, text: HeaderText) -> Iterator[str]:
    """The record path wfdb reads: the header's own, or, for a header wfdb refuses (`text.wfdb_refuses`),
    a normalised copy in a temporary folder next to links to the record's signal files."""
    if not text.wfdb_refuses:
        yield str(header.with_suffix(""))
        return
    with tempfile.TemporaryDirectory(prefix="ecg-wfdb-") as folder:
        copy = Path(folder) / header.name
        copy.write_text(text.normalised(), encoding="ascii", errors="replace")
        for name in set(text.files):
            if (header.parent / name).exists():
                _link_or_copy(header.parent / name, Path(folder) / name)
        yield str(copy.with_suffix(""))


def _check_signal_files(header: Path, file_names: Sequence[str], fmts: Sequence[str],
                        byte_offsets: Sequence[int | None] | None, sig_len: int) -> None:
    """A signal file shorter than its header says: a clear error (wfdb would fail with a bare reshape error,
    or, reading only the first seconds of a long record, not notice at all)."""
    per_file: dict[str, list[int]] = {}
    for channel, name in enumerate(file_names):
        per_file.setdefault(name, []).append(channel)
    for name, channels in per_file.items():
        fmt = fmts[channels[0]]
        offset = (byte_offsets or [0] * len(file_names))[channels[0]] or 0
        per_sample = BYTES_PER_SAMPLE.get(fmt)
        if not per_sample:  # compressed formats (508/516/524) have no fixed size
            continue
        expected = offset + math.ceil(sig_len * len(channels) * per_sample)
        signal_file = header.parent / name
        if not signal_file.exists():
            raise DataError(f"{header}: signal file {name} is missing")
        actual = signal_file.stat().st_size
        if actual < expected:
            raise DataError(f"{header}: header says {sig_len} samples x {len(channels)} signals in {name} "
                            f"({expected} bytes) but the file has {actual} bytes")


def samples_to_read(text: HeaderText, length: int, fs: int) -> int | None:
    """How many samples of the record the first `length / fs` seconds take (None: all of them).

    A longer record keeps only its beginning (`fit_length`), so only that part is read and resampled: a
    30-minute record costs what a 10-second one does.
    """
    if text.fs is None or text.n_samples is None:
        return None
    needed = math.ceil(length * text.fs / fs)
    return needed if needed < text.n_samples else None


def read_signal(header: Path, leads: Sequence[str] = HEFEI_LEADS, length: int = N_SAMPLES,
                fs: int = FS) -> np.ndarray:
    """One record as int16 `[len(leads), length]` on the Hefei scale, at `fs` Hz (its first `length / fs` s)."""
    text = read_header_text(header)
    sampto = samples_to_read(text, length, fs)
    for name in sorted(set(text.files)):  # wfdb would block forever on a FIFO, or fail without the name
        if os.path.lexists(header.parent / name):
            check_regular(header.parent / name)
    with wfdb_record_path(header, text) as base:
        try:
            record = wfdb.rdrecord(base, physical=True, sampto=sampto)  # every channel: one header parse
        except Exception as error:  # wfdb raises bare ValueError/IndexError/... on bad files; say what is wrong
            try:
                head = wfdb.rdheader(base)
            except Exception:
                raise DataError(f"{header}: not a readable WFDB header ({clip(str(error))})") from None
            if head.sig_len:
                _check_signal_files(header, head.file_name, head.fmt, head.byte_offset, head.sig_len)
            raise DataError(f"{header}: wfdb could not read the signal ({clip(str(error))})") from None
    if text.n_samples:
        _check_signal_files(header, record.file_name, record.fmt, record.byte_offset, text.n_samples)
    plan = plan_leads(record.sig_name or [], leads, str(header), header.stem)
    rows = sampto or record.sig_len
    if record.p_signal.shape[0] != rows:
        raise DataError(f"{header}: header says {record.sig_len} samples, the signal file holds "
                        f"{record.p_signal.shape[0]}")
    millivolts = np.zeros((record.n_sig, rows))
    for channel in plan.sources:
        factor = mv_per_unit(record.units[channel])
        if factor is None:
            raise DataError(f"{header}: lead {record.sig_name[channel]} is in unit {quote(record.units[channel])}, "
                            "not a voltage")
        millivolts[channel] = record.p_signal[:, channel] * factor
    millivolts = plan.apply(millivolts)
    millivolts = np.nan_to_num(millivolts, nan=0.0)  # WFDB "no value" samples -> baseline
    return to_hefei_units(fit_length(resample(millivolts, record.fs, fs), length))


def _code_order(code: str) -> tuple[bool, int, str]:
    """SNOMED codes in numeric order, any non-numeric label after them."""
    return (not code.isdigit(), int(code) if code.isdigit() else 0, code)


def unknown_label_rows(table: LabelsCSV, ids: Sequence[str]) -> list[str]:
    """Rows of a labels CSV that name no record under the folder (matched by id or by name)."""
    known = set(ids) | {Path(i).name for i in ids}
    return [row for row in table.rows if row not in known]


def _read_headers(headers: Sequence[Path], ids: list[str], skip_bad_records: bool,
                  source: Path) -> tuple[list[HeaderLabels], list[Path], list[str], dict[str, str]]:
    """Every header's labels; the unreadable ones are one error counting them, or with `skip_bad_records`
    left out and returned as {record id: reason}."""
    infos, kept, kept_ids, bad = [], [], [], {}
    for header, rid in zip(headers, ids):
        try:
            infos.append(read_header_labels(header))
        except DataError as error:
            bad[rid] = str(error)
            continue
        kept.append(header)
        kept_ids.append(rid)
    if bad and not skip_bad_records:
        raise DataError(f"{summary(source, bad, len(headers))}; {HINT}")
    return infos, kept, kept_ids, bad


def read_wfdb_labels(path: Path, labels: Path | None = None, present_only: bool = True,
                     skip_bad_records: bool = False) -> tuple[ECGDataset, np.ndarray, list[Path]]:
    """Labels-only dataset, the mask of records with signal files, and the header paths (in record order).

    Unreadable headers: an error counting them, or with `skip_bad_records` left out and listed in the
    dataset's `skipped`.
    """
    headers = find_headers(path)
    infos, headers, ids, bad = _read_headers(headers, record_ids(path, headers), skip_bad_records, path)
    present = np.array([info.signals_present for info in infos], dtype=bool)
    if labels is None:
        label_lists = [info.labels for info in infos]
        ages = [info.age for info in infos]
        sexes = [info.sex for info in infos]
        class_names = sorted({c for lst in label_lists for c in lst}, key=_code_order)
    else:
        table = LabelsCSV(labels)
        unknown = unknown_label_rows(table, ids)
        if unknown and not present_only:
            raise DataError(f"{table.path}: {len(unknown)} record(s) listed have no WFDB header under {path} "
                            f"(first: {', '.join(map(quote, unknown[:MISSING_SHOWN]))}); pass "
                            "skip_bad_records=True (--skip-bad-records) to load the records that have one")
        rows = []
        for rid in ids:
            key = rid if rid in table.rows else Path(rid).name
            if key not in table.rows:
                raise DataError(f"{table.path}: no row for record {quote(rid)} (found under {path})")
            rows.append(table.rows[key])
        label_lists = [r[0] for r in rows]
        ages = [r[1] for r in rows]
        sexes = [r[2] for r in rows]
        class_names = table.class_names()
    dataset = ECGDataset(signals=None, age=np.array(ages, np.float32), sex=np.array(sexes, np.float32),
                         labels=multi_hot(label_lists, class_names), class_names=class_names, record_ids=ids,
                         lead_names=list(HEFEI_LEADS), fs=FS, units_per_mv=UNITS_PER_MV, skipped=bad)
    return dataset, present, headers


SIGNAL_FORMAT = re.compile(r"(\d+)(?:x\d*)?(?::\d*)?(?:\+(\d+))?")  # '16', '16+24', '16x1+24', '212'


def short_signal_file(header: Path) -> str | None:
    """Why the record's signal file cannot hold what its header says, from the header text and file sizes
    alone; None when it can, when the header gives no length, or when a file is missing (not yet downloaded:
    counted apart)."""
    text = read_header_text(header)
    if not text.n_samples or not all((header.parent / name).exists() for name in text.files):
        return None
    formats = [SIGNAL_FORMAT.match(line.split()[1]) if len(line.split()) > 1 else None
               for line in text.lines[1:1 + text.n_sig]]
    if not all(formats):
        return None  # wfdb names the bad signal line when the record is read
    try:
        _check_signal_files(header, text.files, [m.group(1) for m in formats],
                            [int(m.group(2) or 0) for m in formats], text.n_samples)
    except DataError as error:
        return str(error)
    return None


def read_wfdb_lengths(path: Path) -> tuple[list[tuple[float | None, int | None]], dict[str, str]]:
    """(rate in Hz, samples) of every readable header below `path`, from the record lines alone, and
    {record id: reason} of the records whose signal file is shorter than the header says."""
    lengths, short = [], {}
    headers = find_headers(path)
    for header, rid in zip(headers, record_ids(path, headers)):
        try:
            text = read_header_text(header)
            problem = short_signal_file(header)
        except DataError:  # reported by the labels pass
            continue
        lengths.append((text.fs, text.n_samples))
        if problem:
            short[rid] = problem
    return lengths, short


def _missing_signal(header: Path) -> str:
    missing = sorted(name for name in set(read_header_text(header).files) if not (header.parent / name).exists())
    return f"{header}: signal file {', '.join(missing)} is missing"


def read_wfdb(path: Path, *, labels: Path | None = None, leads: Sequence[str] = HEFEI_LEADS,
              length: int = N_SAMPLES, fs: int = FS, present_only: bool = False,
              skip_bad_records: bool = False) -> ECGDataset:
    """Every record below `path`, signals parsed on all cores.

    Records whose header, signal file or values cannot be read (a header without its signal file counts,
    unless `present_only` drops those quietly): one error that counts all of them and quotes the first few,
    or, with `skip_bad_records`, the others loaded and these listed in `skipped` with the reason.
    """
    # Labels-CSV rows naming no header are refused unless records may be left out (present_only or skip).
    dataset, present, headers = read_wfdb_labels(path, labels, present_only or skip_bad_records,
                                                 skip_bad_records=True)
    bad = dict(dataset.skipped)
    n_headers = len(headers) + len(bad)
    if not present.all():
        if not present_only:
            bad.update({rid: _missing_signal(header)
                        for rid, header, ok in zip(dataset.record_ids, headers, present) if not ok})
        dataset = dataset.subset(present)
        headers = [h for h, ok in zip(headers, present) if ok]
    dataset.signals, failures = parse_each(partial(read_signal, leads=tuple(leads), length=length, fs=fs), headers,
                                           (len(leads), length))
    bad.update({dataset.record_ids[i]: reason for i, reason in sorted(failures.items())})
    if bad and not skip_bad_records:
        raise DataError(f"{summary(path, bad, n_headers)}; {HINT}")
    dataset.lead_names = list(leads)
    dataset.fs = fs
    dataset = keep_readable(dataset, failures, source=path, skip=True)
    dataset.skipped = bad
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


