"""The PhysioNet/CinC Challenge 2021 task: its 26 scored diagnoses, their reward weights, the record sources.

The Challenge scores 30 SNOMED CT codes as 26 classes: dx_mapping_scored.csv's Notes name four pairs scored
as one diagnosis (CRBBB|RBBB, CLBBB|LBBB, PAC|SVPB, PVC|VPB), and weights.csv writes each pair as `A|B`.
`--task cinc2021` maps a WFDB dataset's Dx codes onto those 26 classes, named by abbreviation in the order of
weights.csv, and drops every other code; `--task cinc2021+unscored` keeps the other codes as further classes
(named by their abbreviation in dx_mapping_unscored.csv, or by code when that table lacks them), so a model
can learn them while the Challenge metric still counts only the scored 26. Records whose codes are all
unscored stay in the data with no label: the Challenge's own training data holds them and its metric gives
them no weight (see `ecg.challenge`).

The tables ship with this package (ecg/data/tables/cinc2021/, BSD 2-Clause, (c) 2020, 2021 PhysioNet/
Computing in Cardiology Challenges; the notice is in the LICENSE file beside them).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ecg.data.dataset import ECGDataset
from ecg.data.errors import DataError
from ecg.values import quote

TABLES = Path(__file__).parent / "tables" / "cinc2021"
NORMAL_CODE = "426783006"  # sinus rhythm: the Challenge's "always normal" baseline scores 0
TASKS = ("cinc2021", "cinc2021+unscored")
# Record-name prefix -> source database of the 2021 training data.
SOURCES = {"A": "CPSC", "Q": "CPSC-Extra", "I": "StPetersburg", "S": "PTB", "HR": "PTB-XL", "E": "Georgia",
           "JS": "Chapman-Shaoxing/Ningbo"}
_PREFIX = re.compile(r"^[A-Za-z]+")


@dataclass(frozen=True)
class Scoring:
    """The scored classes: their codes (two for an equivalent pair), names, weights and the normal class."""

    codes: tuple[tuple[str, ...], ...]
    class_names: tuple[str, ...]
    weights: np.ndarray
    normal_index: int
    unscored: dict[str, str]  # code -> abbreviation

    @property
    def class_of(self) -> dict[str, int]:
        """SNOMED CT code -> scored class index (both codes of a pair give the same index)."""
        return {code: i for i, codes in enumerate(self.codes) for code in codes}


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: not a readable CinC scoring table ({error})") from None


@lru_cache(maxsize=4)
def scoring(tables: Path = TABLES) -> Scoring:
    """Read and cross-check the three tables: weights square and symmetric in its labels, every weighted code
    in the scored mapping with its abbreviation, the `A|B` pairs those the Notes name."""
    scored = _read(tables / "dx_mapping_scored.csv")
    unscored = _read(tables / "dx_mapping_unscored.csv")
    weights_path = tables / "weights.csv"
    table = _read(weights_path)
    header = [c.strip() for c in table.columns[1:]]
    rows = [r.strip() for r in table.iloc[:, 0]]
    if header != rows:
        raise DataError(f"{weights_path}: the row labels differ from the column labels")
    try:
        weights = table.iloc[:, 1:].to_numpy(dtype=np.float64)
    except ValueError as error:
        raise DataError(f"{weights_path}: a weight is not a number ({error})") from None
    if weights.shape != (len(header), len(header)) or not np.isfinite(weights).all():
        raise DataError(f"{weights_path}: weights must be a finite {len(header)} x {len(header)} matrix")
    abbreviation = dict(zip(scored["SNOMEDCTCode"].str.strip(), scored["Abbreviation"].str.strip()))
    codes = tuple(tuple(code.split("|")) for code in header)
    unknown = [c for group in codes for c in group if c not in abbreviation]
    if unknown:
        raise DataError(f"{weights_path}: code {unknown[0]} is not in dx_mapping_scored.csv")
    noted = {tuple(re.findall(r"\d+", note)) for note in scored["Notes"] if note.strip()}
    pairs = {group for group in codes if len(group) > 1}
    if noted != pairs:
        raise DataError(f"{weights_path}: the equivalent pairs {sorted(pairs)} differ from the Notes of "
                        f"dx_mapping_scored.csv {sorted(noted)}")
    names = tuple("|".join(abbreviation[c] for c in group) for group in codes)
    normal = [i for i, group in enumerate(codes) if NORMAL_CODE in group]
    if len(normal) != 1:
        raise DataError(f"{weights_path}: the normal class {NORMAL_CODE} is not among the scored classes")
    extra = dict(zip(unscored["SNOMEDCTCode"].str.strip(), unscored["Abbreviation"].str.strip()))
    return Scoring(codes, names, weights, normal[0], extra)


def source_of(record_id: str) -> str:
    """The source prefix of a record (A, Q, I, S, HR, E, JS; '' when the name has none)."""
    match = _PREFIX.match(Path(record_id).name)
    return match.group(0).upper() if match else ""


def apply_task(dataset: ECGDataset, task: str) -> ECGDataset:
    """`dataset` (class names = SNOMED CT codes) with labels mapped onto the scored classes of `task`."""
    if task not in TASKS:
        raise DataError(f"CinC task {quote(task)} is unknown; choose one of {', '.join(TASKS)}")
    score = scoring()
    class_of = score.class_of
    keep_unscored = task == "cinc2021+unscored"
    names = list(score.class_names)
    target: list[int | None] = []
    for code in dataset.class_names:
        if code in class_of:
            target.append(class_of[code])
        elif keep_unscored:
            name = score.unscored.get(code, code)
            if name in names:  # an abbreviation already taken: fall back to the code, which is unique
                name = code
            names.append(name)
            target.append(len(names) - 1)
        else:
            target.append(None)
    if not any(t is not None and t < len(score.class_names) for t in target) and len(dataset):
        shown = ", ".join(dataset.class_names[:5])
        raise DataError(f"task {task}: none of the labels of these records is a scored SNOMED CT code "
                        f"(labels: {shown}{', ...' if len(dataset.class_names) > 5 else ''})")
    mapping = np.zeros((len(dataset.class_names), len(names)), dtype=np.int64)
    for old, new in enumerate(target):
        if new is not None:
            mapping[old, new] = 1
    labels = (dataset.labels.astype(np.int64) @ mapping > 0).astype(np.uint8)
    dropped = [code for code, t in zip(dataset.class_names, target) if t is None]
    unlabelled = int((labels[:, :len(score.class_names)].sum(axis=1) == 0).sum())
    if dropped or unlabelled:
        warnings.warn(f"task {task}: {len(dropped)} unscored code(s) dropped; {unlabelled} of {len(dataset)} "
                      "records have no scored label (kept, as in the Challenge's data)", stacklevel=3)
    return ECGDataset(signals=dataset.signals, age=dataset.age, sex=dataset.sex, labels=labels, class_names=names,
                      record_ids=list(dataset.record_ids), lead_names=list(dataset.lead_names), fs=dataset.fs,
                      units_per_mv=dataset.units_per_mv, skipped=dict(dataset.skipped))
