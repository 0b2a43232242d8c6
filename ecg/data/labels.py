"""Class vocabulary and multi-hot targets, the labels CSV, and classes without records."""
from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ecg import values
from ecg.data.errors import DataError
from ecg.data.files import read_bytes

SEX_WORDS = {"male": 1.0, "m": 1.0, "1": 1.0, "female": 0.0, "f": 0.0, "0": 0.0}
# What label files and class lists are tried as, in order. The Hefei/Tianchi data ships UTF-8, sometimes with a
# BOM (utf-8-sig reads both); files re-saved on Chinese Windows are GBK, which GB18030 contains.
TEXT_ENCODINGS = ("utf-8-sig", "gb18030")


def read_text(path: Path) -> str:
    """A label file, class list or labels CSV as text: UTF-8 (with or without BOM), UTF-16 with a BOM, or
    GBK/GB18030; anything else is one line naming the file, the encodings tried and the first bad byte."""
    data = read_bytes(path)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = TEXT_ENCODINGS
    first_error = None
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as error:
            first_error = first_error or error
    raise DataError(f"{path}: not text in {' / '.join(encodings)} (byte {first_error.start}: "
                    f"{data[first_error.start:first_error.start + 4]!r}); save it as UTF-8") from None


def multi_hot(label_lists: Sequence[Sequence[str]], class_names: Sequence[str]) -> np.ndarray:
    """`uint8 [N, C]` with a 1 where record n carries class c; every label must be a known class name."""
    index = {name: i for i, name in enumerate(class_names)}
    out = np.zeros((len(label_lists), len(class_names)), dtype=np.uint8)
    for row, labels in enumerate(label_lists):
        for label in labels:
            if label not in index:
                raise DataError(f"label {values.quote(label)} is not a known class")
            out[row, index[label]] = 1
    return out


def parse_sex(value: object, where: str) -> float:
    """1.0 male, 0.0 female, NaN missing (empty, NaN, 'Unknown'); anything else is an error naming `where`."""
    if values.is_missing_text(value):
        return np.nan
    text = str(value).strip().lower()
    if text not in SEX_WORDS:
        raise DataError(f"{where}: sex {values.quote(value)} is not male/female")
    return SEX_WORDS[text]


def parse_age(value: object, where: str) -> float:
    """Age in years or NaN when missing ('', NaN, 'Unknown'); text, infinity or an age outside
    `ecg.values.AGE_YEARS` is an error naming `where`."""
    try:
        return values.age(value)
    except ValueError as error:
        raise DataError(f"{where}: {error}") from None


def empty_classes(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Names of classes no record carries (kept in the vocabulary, reported rather than dropped)."""
    counts = np.asarray(labels).sum(axis=0)
    return [name for name, count in zip(class_names, counts) if count == 0]


def warn_empty_classes(labels: np.ndarray, class_names: Sequence[str], source: object) -> None:
    """Warn (once per load) about classes with no record; they stay in the vocabulary and in the outputs."""
    empty = empty_classes(labels, class_names)
    if empty:
        shown = ", ".join(empty[:10]) + (", ..." if len(empty) > 10 else "")
        warnings.warn(f"{source}: {len(empty)} class(es) have no record and are kept: {shown}", stacklevel=3)


class LabelsCSV:
    """A labels CSV (`record`, `labels` separated by ';', optional `age`, `sex`), for databases whose headers
    carry free text. The class order is the order of first appearance unless `class_names` is given."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            frame = pd.read_csv(io.StringIO(read_text(self.path)), dtype=str, keep_default_na=False, engine="c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise DataError(f"{self.path}: not a readable labels CSV ({error})") from None
        missing = [column for column in ("record", "labels") if column not in frame.columns]
        if missing:
            raise DataError(f"{self.path}: missing column(s) {', '.join(missing)} "
                            f"(columns: {', '.join(frame.columns)})")
        if frame.empty:
            raise DataError(f"{self.path}: the labels CSV has no rows")
        self.rows: dict[str, tuple[list[str], float, float]] = {}
        for number, row in enumerate(frame.itertuples(index=False), 2):  # line 1 is the header
            where = f"{self.path}, line {number}"
            record = str(row.record).strip()
            if record in self.rows:
                raise DataError(f"{where}: record {values.quote(record)} listed twice")
            labels = [label.strip() for label in str(row.labels).split(";") if label.strip()]
            age = parse_age(getattr(row, "age", ""), where) if "age" in frame.columns else np.nan
            sex = parse_sex(getattr(row, "sex", ""), where) if "sex" in frame.columns else np.nan
            self.rows[record] = (labels, age, sex)

    def class_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for labels, _, _ in self.rows.values():
            seen.update(dict.fromkeys(labels))
        return list(seen)
