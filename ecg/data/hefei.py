"""Hefei/Tianchi competition layout: `NAME.txt` records, a tab-separated label file and a class list.

Layout (as in hf_round2, see docs/data.md)::

    FOLDER/<name>_train.txt        NAME.txt<TAB>age<TAB>sex<TAB>label<TAB>...<TAB>  (trailing tab; age/sex may be empty)
    FOLDER/<name>_arrythmia.txt    one class name a line; its order defines the class indices (optional)
    FOLDER/<name>_train/NAME.txt   header line of lead names, then 5,000 rows of 8 integers (4.88 uV/unit)

`read_hefei_labels` never opens a signal file; `read_hefei` parses them, on all cores.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ecg.data.bad_records import HINT, keep_readable
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError
from ecg.data.files import check_regular, read_bytes
from ecg.data.labels import multi_hot, parse_age, read_text
from ecg.data.leads import plan_leads
from ecg.data.parallel import parse_each
from ecg.data.scale import fit_length, resample, to_hefei_units
from ecg.values import quote

SEX_CODES = {"MALE": 1.0, "FEMALE": 0.0}
SEX_NAMES = {1.0: "MALE", 0.0: "FEMALE"}
MISSING_SHOWN = 5  # how many missing signal files an error message names
CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")  # in a text row: binary garbage, not a separator


@dataclass(frozen=True)
class HefeiFiles:
    """Where the three parts of a Hefei folder are."""

    label_file: Path
    class_file: Path | None
    record_dir: Path


# ----------------------------------------------------------------------------------------------------------------
# Finding the files
# ----------------------------------------------------------------------------------------------------------------


def _first_line(path: Path) -> str:
    """The first line, enough to recognise a file (UTF-16 by its BOM; GBK names decode as replacement marks)."""
    check_regular(path)  # an explicit label file may be anything; a FIFO would block the read
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = head.decode("utf-16", errors="replace")
    else:
        text = head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    return text.split("\n", 1)[0].rstrip("\r")


def _is_label_line(line: str) -> bool:
    return "\t" in line and line.split("\t", 1)[0].lower().endswith(".txt")


def _is_label_file(path: Path) -> bool:
    """A label file starts with a label line; an empty .txt counts too, so that reading it says it is empty."""
    return path.stat().st_size == 0 or _is_label_line(_first_line(path))


def _is_lead_header(line: str) -> bool:
    known = {lead.lower() for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")}
    tokens = line.split()
    return bool(tokens) and all(token.lower() in known for token in tokens)


def looks_like_hefei(folder: Path) -> bool:
    """True when `folder` holds a top-level label file (`NAME.txt<TAB>...` lines)."""
    if folder.is_file():
        return folder.suffix == ".txt" and _is_label_file(folder)
    return any(_is_label_file(p) for p in _top_level_candidates(folder))


def _top_level_candidates(folder: Path) -> list[Path]:
    """Top-level .txt files that may be a label file or class list (not record files, whose stems are digits)."""
    files = sorted(p for p in folder.glob("*.txt") if p.is_file())
    named = [p for p in files if not p.stem.isdigit()]
    return named if named or len(files) > 50 else files


def find_hefei_files(
    path: str | os.PathLike,
    *,
    label_file: str | os.PathLike | None = None,
    class_file: str | os.PathLike | None = None,
    record_dir: str | os.PathLike | None = None,
) -> HefeiFiles:
    """Discover the label file, class list and record folder inside `path` (or take the explicit ones)."""
    path = Path(path)
    if path.is_file() and label_file is None:
        label_file, path = path, path.parent
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    candidates = _top_level_candidates(path) if path.is_dir() else []
    if label_file is None:
        labels = [p for p in candidates if _is_label_file(p)]
        if not labels:
            raise DataError(f"{path}: no Hefei label file (lines 'NAME.txt<TAB>age<TAB>sex<TAB>label...') found; "
                            "pass it explicitly")
        if len(labels) > 1:
            preferred = [p for p in labels if "train" in p.name.lower() or "label" in p.name.lower()]
            if len(preferred) != 1:
                raise DataError(f"{path}: several label files ({', '.join(p.name for p in labels)}); pass one explicitly")
            labels = preferred
        label_file = labels[0]
    label_file = Path(label_file)
    if class_file is None:
        others = [p for p in candidates if p != label_file and not _is_label_file(p)
                  and not _is_lead_header(_first_line(p))]
        if len(others) > 1:
            others = [p for p in others if any(key in p.name.lower() for key in ("arrythmia", "arrhythmia", "class"))]
        if len(others) > 1:
            raise DataError(f"{path}: several possible class lists ({', '.join(p.name for p in others)}); "
                            "pass one explicitly")
        class_file = others[0] if others else None
    if record_dir is None:
        record_dir = _find_record_dir(path, label_file)
    return HefeiFiles(Path(label_file), None if class_file is None else Path(class_file), Path(record_dir))


def _find_record_dir(folder: Path, label_file: Path) -> Path:
    """The folder named like the label file (hf_round2_train.txt -> hf_round2_train/), else the one holding
    the first listed record, else `folder` itself."""
    same_name = folder / label_file.stem
    if same_name.is_dir():
        return same_name
    first = _first_line(label_file).split("\t", 1)[0]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / first).exists():
            return sub
    return folder


# ----------------------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------------------


def read_class_file(path: Path) -> list[str]:
    """Class names, one a line, in index order; blank lines ignored, duplicates are an error."""
    # split on "\n" only: str.splitlines also breaks at \x1c, \u2028, ..., which would shift line numbers
    names = [line.strip() for line in read_text(path).split("\n")]
    names = [name for name in names if name]
    if not names:
        raise DataError(f"{path}: the class list is empty")
    seen: set[str] = set()
    for number, name in enumerate(names, 1):
        if name in seen:
            raise DataError(f"{path}: class {quote(name)} listed twice (line {number})")
        seen.add(name)
    return names


def read_hefei_labels(files: HefeiFiles) -> ECGDataset:
    """The label file as a labels-only dataset (signals None). Errors name the file and line."""
    lines = read_text(files.label_file).split("\n")
    records: list[str] = []
    ages: list[float] = []
    sexes: list[float] = []
    label_lists: list[list[str]] = []
    line_of: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 3:
            raise DataError(f"{files.label_file}, line {number}: expected 'NAME.txt<TAB>age<TAB>sex<TAB>label...', "
                            f"got {quote(line)}")
        name, age, sex = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if name in line_of:
            raise DataError(f"{files.label_file}, line {number}: record {name} already listed on line {line_of[name]}")
        line_of[name] = number
        ages.append(parse_age(age, f"{files.label_file}, line {number}"))
        if sex and sex.upper() not in SEX_CODES:
            raise DataError(f"{files.label_file}, line {number}: sex {quote(sex)} is not MALE, FEMALE or empty")
        sexes.append(SEX_CODES[sex.upper()] if sex else np.nan)
        records.append(name)
        label_lists.append([label.strip() for label in fields[3:] if label.strip()])
    if not records:
        raise DataError(f"{files.label_file}: the label file is empty")
    if files.class_file is not None:
        class_names = read_class_file(files.class_file)
        known = set(class_names)
        for name, labels in zip(records, label_lists):
            unknown = [label for label in labels if label not in known]
            if unknown:
                raise DataError(f"{files.label_file}, line {line_of[name]}: label(s) {', '.join(map(repr, unknown))} "
                                f"not in the class list {files.class_file}")
    else:
        class_names = sorted({label for labels in label_lists for label in labels})
    return ECGDataset(
        signals=None,
        age=np.array(ages, dtype=np.float32),
        sex=np.array(sexes, dtype=np.float32),
        labels=multi_hot(label_lists, class_names),
        class_names=class_names,
        record_ids=[name[:-4] if name.lower().endswith(".txt") else name for name in records],
        lead_names=list(HEFEI_LEADS),
        fs=FS,
        units_per_mv=UNITS_PER_MV,
    )


def record_path(files: HefeiFiles, record_id: str) -> Path:
    return files.record_dir / f"{record_id}.txt"


def present_mask(files: HefeiFiles, record_ids: Sequence[str]) -> np.ndarray:
    """Which listed records have a signal file (one directory listing, no per-file stat)."""
    try:
        existing = set(os.listdir(files.record_dir))
    except FileNotFoundError:
        existing = set()
    return np.array([f"{rid}.txt" in existing for rid in record_ids], dtype=bool)


# ----------------------------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------------------------


def parse_record(path: Path, leads: Sequence[str] = HEFEI_LEADS, length: int = N_SAMPLES,
                 fs: int = FS) -> np.ndarray:
    """One record file as int16 `[len(leads), length]` at `fs` Hz.

    The file holds `length * 500 / fs` rows at 500 Hz (5,000 for the defaults), each of one value per header
    column; at another `fs` it is resampled. Fast path: the whole body goes through numpy's C text parser in
    one call, and the values per row are counted on the raw bytes (`_first_ragged_row`), since a row with one
    value too many next to a row with one too few keeps the total right and would shift values onto the wrong
    leads. Only when a count is off does the slow path run, to name the first bad line.
    """
    rows = round(length * FS / fs)
    data = read_bytes(path)
    newline = data.find(b"\n")
    if newline < 0:
        raise DataError(f"{path}, line 1: no header line of lead names followed by samples")
    header = data[:newline].decode("utf-8-sig", errors="replace").split()
    body = data[newline + 1:]
    n_cols = len(header)
    plan = plan_leads(header, leads, str(path), path.stem)
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    try:
        values = np.fromstring(body, dtype=np.int64, sep=" ")
    except ValueError:  # a cell that is not an integer; _diagnose names it
        values = np.empty(0, np.int64)
    if n_lines != rows or values.size != rows * n_cols or _first_ragged_row(body, n_cols) is not None:
        _diagnose(path, body, n_cols, rows)
    if values.min(initial=0) < -32768 or values.max(initial=0) > 32767:
        raise DataError(f"{path}: value outside the int16 range of the Hefei scale "
                        f"({values.min()}..{values.max()})")
    table = values.reshape(rows, n_cols).T
    if fs != FS:
        return to_hefei_units(fit_length(resample(plan.apply(table) / UNITS_PER_MV, FS, fs), length))
    if plan.direct is not None:
        return np.ascontiguousarray(table[plan.direct], dtype=np.int16)
    # derived limb leads, rounded in Hefei units (halves of odd sums round to even)
    return np.clip(np.rint(plan.apply(table)), -32768, 32767).astype(np.int16)


def _values_per_line(raw: np.ndarray) -> np.ndarray:
    """How many values each line of `raw` (the body's bytes) holds: a value starts where a byte above 0x20
    follows a blank or control byte (or the start); the starts are summed between the newlines."""
    blank = raw <= 0x20
    starts = ~blank
    starts[1:] &= blank[:-1]
    line_starts = np.flatnonzero(raw == 0x0A) + 1
    bounds = np.concatenate(([0], line_starts[line_starts < raw.size]))  # every line holds >= 1 byte
    return np.add.reduceat(starts, bounds, dtype=np.int32)


def _first_ragged_row(body: bytes, n_cols: int) -> int | None:
    """0-based index of the first body line that does not hold exactly `n_cols` values, else None.

    Vectorised on the bytes, about a sixth of numpy's parse: with `n_cols` value starts per line in all,
    every line holds exactly `n_cols` when each line's last start lies before its newline and the next
    line's first start after it (strided compares). Otherwise some line is off; `_values_per_line` finds it.
    """
    raw = np.frombuffer(body, dtype=np.uint8)
    if raw.size == 0:
        return None
    blank = raw <= 0x20
    starts = np.flatnonzero(blank[:-1] > blank[1:]) + 1  # a blank byte followed by a value byte
    ends = np.flatnonzero(raw == 0x0A)
    n_lines = len(ends) + int(raw[-1] != 0x0A)
    if len(starts) + int(not blank[0]) != n_lines * n_cols:
        ragged = np.flatnonzero(_values_per_line(raw) != n_cols)
        return int(ragged[0]) if len(ragged) else None
    if not blank[0]:
        starts = np.concatenate(([0], starts))
    if raw[-1] != 0x0A:
        ends = np.append(ends, raw.size)
    bad = starts[n_cols - 1::n_cols] > ends
    bad[:-1] |= starts[n_cols::n_cols] < ends[:-1]
    ragged = np.flatnonzero(bad)
    return int(ragged[0]) if len(ragged) else None


def _diagnose(path: Path, body: bytes, n_cols: int, length: int) -> None:
    """Raise a DataError naming the first bad line (slow; runs only when the fast parse found a problem)."""
    # split on b"\n" as _first_ragged_row counts, so both agree on line numbers
    lines = body.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    for offset, line in enumerate(lines):
        number = offset + 2  # 1-based, after the header
        control = CONTROL_BYTES.search(line)
        if control:
            raise DataError(f"{path}, line {number}: not text (byte {control.group()!r} at column "
                            f"{control.start() + 1}: {quote(line.decode('utf-8', errors='replace'))})")
        cells = [cell.decode("utf-8", errors="replace") for cell in line.split()]
        if len(cells) != n_cols:
            raise DataError(f"{path}, line {number}: {len(cells)} columns, expected {n_cols}")
        for cell in cells:
            try:
                int(cell)
            except ValueError:
                raise DataError(f"{path}, line {number}: {quote(cell)} is not an integer") from None
    raise DataError(f"{path}: {len(lines)} sample rows, expected {length}")


def read_hefei(files: HefeiFiles, *, leads: Sequence[str] = HEFEI_LEADS, length: int = N_SAMPLES,
               fs: int = FS, present_only: bool = False, skip_bad_records: bool = False) -> ECGDataset:
    """Labels and signals. Records listed without a signal file: an error, or skipped with `present_only`.

    Record files that cannot be parsed: one error counting them and quoting the first few, or, with
    `skip_bad_records`, the others loaded and these (and any missing file) listed in `skipped` with the reason.
    """
    dataset = read_hefei_labels(files)
    present = present_mask(files, dataset.record_ids)
    if not present.all():
        if not present_only and not skip_bad_records:
            missing = [rid for rid, ok in zip(dataset.record_ids, present) if not ok]
            raise DataError(
                f"{files.label_file}: {len(missing)} of {len(present)} listed records have no signal file in "
                f"{files.record_dir} (first: {', '.join(quote(m + '.txt') for m in missing[:MISSING_SHOWN])}); "
                f"{HINT}")
        if not present_only:
            dataset.skipped.update({rid: f"{record_path(files, rid)}: no such file (listed in {files.label_file})"
                                    for rid, ok in zip(dataset.record_ids, present) if not ok})
        dataset = dataset.subset(present)
    paths = [record_path(files, rid) for rid in dataset.record_ids]
    dataset.signals, failures = parse_each(partial(parse_record, leads=tuple(leads), length=length, fs=fs), paths,
                                           (len(leads), length))
    dataset.lead_names = list(leads)
    dataset.fs = fs
    return keep_readable(dataset, failures, source=files.record_dir, skip=skip_bad_records)


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def write_hefei(dataset: ECGDataset, out_dir: str | os.PathLike, *, name: str = "ecg") -> Path:
    """Write `dataset` in the Hefei layout under `out_dir` and return `out_dir` (what `load_dataset` takes).

    Files: `<name>_train.txt` (label file, trailing tab), `<name>_arrythmia.txt` (class list, the competition's
    spelling) and `<name>_train/RECORD.txt` (lead-name header, then one row of integers per sample).
    Signals must be integers on the Hefei scale (int16), as every reader returns them.
    """
    if dataset.signals is None:
        raise DataError("write_hefei needs signals; this dataset holds labels only")
    if not np.issubdtype(dataset.signals.dtype, np.integer):
        raise DataError(f"write_hefei needs integer signals on the Hefei scale, got {dataset.signals.dtype}")
    out = Path(out_dir)
    record_dir = out / f"{name}_train"
    record_dir.mkdir(parents=True, exist_ok=True)
    (out / f"{name}_arrythmia.txt").write_text("".join(f"{c}\n" for c in dataset.class_names), encoding="utf-8")
    rows = []
    for i, rid in enumerate(dataset.record_ids):
        age = "" if np.isnan(dataset.age[i]) else str(int(round(float(dataset.age[i]))))
        sex = "" if np.isnan(dataset.sex[i]) else SEX_NAMES[float(dataset.sex[i])]
        labels = [dataset.class_names[c] for c in np.flatnonzero(dataset.labels[i])]
        rows.append("\t".join([f"{rid}.txt", age, sex, *labels]) + "\t\n")
    (out / f"{name}_train.txt").write_text("".join(rows), encoding="utf-8")
    header = " ".join(dataset.lead_names) + "\n"
    for rid, signal in zip(dataset.record_ids, dataset.signals):
        with open(record_dir / f"{rid}.txt", "w", encoding="utf-8") as handle:
            handle.write(header)
            np.savetxt(handle, np.asarray(signal).T, fmt="%d", delimiter=" ")
    return out
