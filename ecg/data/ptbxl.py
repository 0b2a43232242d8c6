"""PTB-XL from its download folder: `ptbxl_database.csv` + `scp_statements.csv`, signals in records100/records500.

Labels follow the benchmark of Strodthoff et al. 2020 (github.com/helme/ecg_ptbxl_benchmarking, `utils.py`
`compute_label_aggregations` and `select_data`), so a result here can be compared with its tables:

- every statement listed in a record's `scp_codes` counts as present, whatever its likelihood: the benchmark
  reads only the dict's keys (`y_dic.keys()`), so `{'NORM': 100.0, 'SR': 0.0}` gives NORM and SR alike
  (0 is PTB-XL's "likelihood not given", used for most non-diagnostic statements);
- `all`: every statement; `diagnostic`, `form`, `rhythm`: the statements with a 1 in that column of
  scp_statements.csv; `subdiagnostic` / `superdiagnostic`: the `diagnostic_subclass` / `diagnostic_class`
  of the record's diagnostic statements;
- classes are sorted by name (as scikit-learn's MultiLabelBinarizer orders them); the vocabulary is the
  task's statements in the table (71, 44, 23, 5, 19, 12), which on the full database is exactly the set the
  benchmark's `min_samples=0` keeps;
- records with no label in the task are left out (and counted);
- the official split is `strat_fold` 1-8 train, 9 validation, 10 test.

Record ids are the `ecg_id`s as text. Sex is 0 male / 1 female in PTB-XL and becomes this project's
1 male / 0 female; PTB-XL marks patients older than 89 with age 300, read here as 90.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.data.errors import DataError
from ecg.data.labels import multi_hot, parse_age
from ecg.data.bad_records import HINT, keep_readable
from ecg.data.parallel import parse_each
from ecg.data.physionet import read_signal
from ecg.values import QUOTE_CHARS, clip, quote

DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
DEFAULT_TASK = "all"
OFFICIAL_FOLDS = {"train": range(1, 9), "val": (9,), "test": (10,)}
AGE_OVER_89 = 300  # PTB-XL's mark for an anonymised age above 89
DATABASE_COLUMNS = ("ecg_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
STATEMENT_COLUMNS = ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")


def root_of(path: Path) -> Path:
    """The PTB-XL folder, given the folder itself or its ptbxl_database.csv."""
    return path.parent if path.is_file() else path


def looks_like_ptbxl(path: Path) -> bool:
    """A folder holding ptbxl_database.csv and scp_statements.csv, or that database file itself."""
    if path.is_file() and path.name != DATABASE:
        return False
    root = root_of(path)
    return (root / DATABASE).is_file() and (root / STATEMENTS).is_file()


def read_statements(path: Path) -> pd.DataFrame:
    """scp_statements.csv indexed by statement code; the task columns checked."""
    try:
        table = pd.read_csv(path, index_col=0)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable statement table ({error})") from None
    missing = [c for c in STATEMENT_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (a PTB-XL scp_statements.csv has them)")
    table.index = table.index.astype(str)
    for column in ("diagnostic", "form", "rhythm"):
        values = table[column]
        bad = values.notna() & (values != 1.0)
        if bad.any():
            code = table.index[bad.to_numpy()][0]
            raise DataError(f"{path}: statement {quote(code)}: {column} is {quote(values[code])}, expected 1.0 or "
                            "empty")
    return table


def task_vocabulary(statements: pd.DataFrame, task: str) -> list[str]:
    """The classes of `task`, sorted by name."""
    if task not in TASKS:
        raise DataError(f"PTB-XL task {quote(task)} is unknown; choose one of {', '.join(TASKS)}")
    diagnostic = statements[statements["diagnostic"] == 1.0]
    values = {
        "all": statements.index,
        "diagnostic": diagnostic.index,
        "subdiagnostic": diagnostic["diagnostic_subclass"].dropna(),
        "superdiagnostic": diagnostic["diagnostic_class"].dropna(),
        "form": statements.index[statements["form"] == 1.0],
        "rhythm": statements.index[statements["rhythm"] == 1.0],
    }[task]
    return sorted({str(v) for v in values})


def statement_map(statements: pd.DataFrame, task: str) -> dict[str, str]:
    """statement code -> the class it adds in `task` (codes outside the task are absent)."""
    diagnostic = statements["diagnostic"] == 1.0
    if task == "all":
        return {code: code for code in statements.index}
    if task in ("diagnostic", "form", "rhythm"):
        return {code: code for code in statements.index[statements[task] == 1.0]}
    column = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
    chosen = statements[diagnostic & statements[column].notna()]
    return {code: str(value) for code, value in chosen[column].items()}


@dataclass
class PtbxlTable:
    """The records of one task: the database rows kept (in ecg_id order), their labels, what was left out."""

    root: Path
    task: str
    rows: pd.DataFrame
    label_lists: list[list[str]]
    class_names: list[str]
    left_out: int
    records_in: int


# One `'CODE': likelihood` entry of scp_codes. The column is parsed with this, not `ast.literal_eval`: a crafted
# cell (a deeply nested or enormous expression) could exhaust the parser's memory; a regular expression over
# the entries takes time in proportion to the text and accepts only what PTB-XL writes.
_SCP_ENTRY = re.compile(r"""\s*(?:'([^'\\]*)'|"([^"\\]*)")\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*""")


def _scp_codes(value: object, where: str, statements: pd.DataFrame) -> dict[str, float]:
    """scp_codes as {statement: likelihood}: a dict literal of quoted codes and numbers, as PTB-XL writes it."""
    text = str(value).strip()
    entries = text[1:-1].split(",") if text.startswith("{") and text.endswith("}") else None
    if entries and not entries[-1].strip():
        entries.pop()  # "{'NORM': 100.0,}"; and "{}" holds no entry
    codes: dict[str, float] = {}
    for entry in entries if entries is not None else [None]:
        match = _SCP_ENTRY.fullmatch(entry) if entry is not None else None
        if match is None:
            raise DataError(f"{where}: scp_codes {quote(value)} is not a dict of statements like {{'NORM': 100.0}}")
        codes[match.group(1) if match.group(1) is not None else match.group(2)] = float(match.group(3))
    unknown = [code for code in codes if code not in statements.index]
    if unknown:
        raise DataError(f"{where}: statement {quote(unknown[0])} is not in {STATEMENTS}")
    return codes


def _age(value: object, where: str) -> float:
    """Years, PTB-XL's 300 ("older than 89") read as 90; anything else outside `ecg.values.AGE_YEARS` refused."""
    if not pd.isna(value) and str(value).strip() in (str(AGE_OVER_89), f"{AGE_OVER_89}.0"):
        return 90.0
    return parse_age(value, where)


def _sex(value: object, where: str) -> float:
    if pd.isna(value):
        return math.nan
    if value not in (0, 1, 0.0, 1.0):
        raise DataError(f"{where}: sex {quote(value)} is not 0 (male) or 1 (female)")
    return 1.0 - float(value)  # PTB-XL: 0 male, 1 female; here: 1 male, 0 female


def read_table(path: Path, task: str | None = None) -> PtbxlTable:
    """The database rows with a label in `task` (default 'all'), aggregated as the benchmark does."""
    root = root_of(path)
    task = task or DEFAULT_TASK
    statements = read_statements(root / STATEMENTS)
    class_names = task_vocabulary(statements, task)
    mapping = statement_map(statements, task)
    database = root / DATABASE
    try:
        frame = pd.read_csv(database)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{database}: not a readable PTB-XL database ({error})") from None
    missing = [c for c in DATABASE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{database}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"{database}: no records")
    if frame["ecg_id"].duplicated().any():
        row = int(np.flatnonzero(frame["ecg_id"].duplicated().to_numpy())[0])
        raise DataError(f"{database}, line {row + 2}: ecg_id {frame['ecg_id'].iloc[row]} listed twice")
    keep, label_lists, ages, sexes = [], [], [], []
    for row, record in enumerate(frame.itertuples(index=False)):
        where = f"{database}, line {row + 2}"
        if record.strat_fold not in range(1, 11):
            raise DataError(f"{where}: strat_fold {quote(record.strat_fold)} is not 1-10")
        codes = _scp_codes(record.scp_codes, where, statements)
        labels = sorted({mapping[code] for code in codes if code in mapping})
        ages.append(_age(record.age, where))
        sexes.append(_sex(record.sex, where))
        if labels:
            keep.append(row)
            label_lists.append(labels)
    rows = frame.iloc[keep].reset_index(drop=True)
    rows["age"] = np.asarray(ages, dtype=np.float32)[keep]
    rows["sex"] = np.asarray(sexes, dtype=np.float32)[keep]
    left_out = len(frame) - len(rows)
    if not len(rows):
        raise DataError(f"{database}: no record has a label in task {task!r}")
    return PtbxlTable(root, task, rows, label_lists, class_names, left_out, len(frame))


def _warn_left_out(table: PtbxlTable) -> None:
    if table.left_out:
        warnings.warn(f"{table.root}: {table.left_out} of {table.records_in} records have no label in PTB-XL task "
                      f"{table.task!r} and are left out", stacklevel=3)


def signal_column(fs: int) -> str:
    """100 Hz is read from records100/ (filename_lr); any other rate from records500/, resampled if not 500."""
    return "filename_lr" if fs <= 100 else "filename_hr"


def _headers(table: PtbxlTable, fs: int) -> list[Path]:
    return [table.root / f"{name}.hea" for name in table.rows[signal_column(fs)]]


def _dataset(table: PtbxlTable) -> ECGDataset:
    return ECGDataset(signals=None, age=table.rows["age"].to_numpy(), sex=table.rows["sex"].to_numpy(),
                      labels=multi_hot(table.label_lists, table.class_names), class_names=table.class_names,
                      record_ids=[str(i) for i in table.rows["ecg_id"]], lead_names=list(HEFEI_LEADS), fs=FS,
                      units_per_mv=UNITS_PER_MV)


def _present(headers: Sequence[Path]) -> np.ndarray:
    return np.array([h.is_file() and (h.with_suffix(".dat").is_file() or h.with_suffix(".mat").is_file())
                     for h in headers], dtype=bool)


def read_ptbxl_labels(path: Path, task: str | None = None, fs: int = FS) -> tuple[ECGDataset, int]:
    """Labels-only dataset of `task` and how many of its records have signal files at `fs`."""
    table = read_table(path, task)
    _warn_left_out(table)
    return _dataset(table), int(_present(_headers(table, fs)).sum())


def read_ptbxl(path: Path, *, task: str | None = None, leads: Sequence[str] = HEFEI_LEADS,
               length: int = N_SAMPLES, fs: int = FS, present_only: bool = False,
               skip_bad_records: bool = False) -> ECGDataset:
    """The records of `task` with signals from records100/ (fs 100) or records500/, on all cores.

    A record whose signal cannot be read is one DataError counting all of them, or, with `skip_bad_records`,
    left out and listed in `skipped` with the reason (`ecg.data.bad_records`)."""
    table = read_table(path, task)
    _warn_left_out(table)
    dataset = _dataset(table)
    headers = _headers(table, fs)
    present = _present(headers)
    if not present.all():
        missing = {rid: f"{header}: no such header and signal file"
                   for rid, header, ok in zip(dataset.record_ids, headers, present) if not ok}
        if not (present_only or skip_bad_records):
            first = ", ".join(quote(os.path.relpath(h, table.root)) for h, ok in zip(headers, present) if not ok)
            raise DataError(f"{table.root}: {len(missing)} of {len(headers)} records have no signal files "
                            f"(first: {clip(first, 5 * QUOTE_CHARS)}); {HINT}")
        dataset = dataset.subset(present)
        if not present_only:  # skipped records are listed with their reason, as every reader lists them
            dataset.skipped.update(missing)
        headers = [h for h, ok in zip(headers, present) if ok]
    dataset.signals, failures = parse_each(partial(read_signal, leads=tuple(leads), length=length, fs=fs), headers,
                                           (len(leads), length))
    dataset.lead_names = list(leads)
    dataset.fs = fs
    return keep_readable(dataset, failures, source=table.root, skip=skip_bad_records)


def official_split(path: Path, record_ids: Sequence[str]) -> np.ndarray:
    """"train"/"val"/"test" per record by `strat_fold` (1-8, 9, 10), as PTB-XL's authors recommend."""
    database = root_of(path) / DATABASE
    frame = pd.read_csv(database, usecols=["ecg_id", "strat_fold"])
    fold = dict(zip(frame["ecg_id"].astype(str), frame["strat_fold"]))
    by_fold = {f: name for name, folds in OFFICIAL_FOLDS.items() for f in folds}
    missing = [rid for rid in record_ids if rid not in fold]
    if missing:
        raise DataError(f"{database}: {len(missing)} record(s) have no strat_fold (first: {', '.join(missing[:5])})")
    return np.array([by_fold[int(fold[rid])] for rid in record_ids], dtype="<U5")


def source_files(path: Path, fs: int = FS) -> list[Path]:
    """The two tables and the signal files of the rate `fs` reads (what keys the cache)."""
    root = root_of(path)
    frame = pd.read_csv(root / DATABASE, usecols=[signal_column(fs)])
    files = [root / DATABASE, root / STATEMENTS]
    for name in frame[signal_column(fs)]:
        for suffix in (".hea", ".dat"):
            candidate = root / f"{name}{suffix}"
            if candidate.exists():
                files.append(candidate)
    return files
