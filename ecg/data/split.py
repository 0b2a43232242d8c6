"""Train/val/test split by multi-label iterative stratification (iterstrat), fixed seed, saved as CSV.

`make_split` runs `MultilabelStratifiedShuffleSplit` twice (test off the whole set, then val off the rest),
then repairs the rare classes the stratifier can leave out: every class with at least `MIN_FOR_COVERAGE`
records gets at least one record in train and one in test, by moving records whose other classes do not
depend on them. Classes that cannot be covered (fewer records) are reported with a warning.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ecg import values
from ecg.data import cache
from ecg.data.errors import DataError
from ecg.data.files import read_text_csv

SPLITS = ("train", "val", "test")
MIN_FOR_COVERAGE = 3  # a class with this many records can have one in each of train, val and test
COVERED = ("train", "test")  # the splits every such class must reach
# The smallest parts a search can be run and judged on: trials are ranked on validation (one record cannot
# rank them, and cross-fitting the thresholds needs two halves), the chosen model is scored on test, and
# training needs a batch. A small set is topped up from train to reach them (`top_up`).
MINIMUM = {"train": 2, "val": 2, "test": 1}
# Part of every cached stratifier draw's key, with iterstrat's version: bump it when `_stratified` draws
# differently (other arguments), so that no draw made the old way is reused.
DRAW_VERSION = 1


def make_split(labels: np.ndarray, ratios: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0,
               class_names: Sequence[str] | None = None) -> np.ndarray:
    """`np.ndarray` of "train"/"val"/"test", one per record, stratified over the multi-hot `labels [N, C]`.
    `class_names` (in index order) name the classes in the warning about classes too rare to cover."""
    try:
        seed = values.seed(seed)
    except ValueError as err:
        raise DataError(f"split {err}") from None
    labels = np.asarray(labels)
    ratios = np.asarray(ratios, dtype=float)
    if labels.ndim != 2:
        raise DataError(f"labels must be [N, C], got shape {labels.shape}")
    if len(ratios) != 3 or (ratios < 0).any() or not np.isclose(ratios.sum(), 1.0) or ratios[0] <= 0:
        raise DataError(f"ratios must be three non-negative numbers summing to 1 with train > 0, got {tuple(ratios)}")
    if labels.shape[1] == 0:
        raise DataError(f"no classes to split by: labels have shape {labels.shape} (no record carries a label)")
    n = len(labels)
    # One class: the stratifier takes multi-label targets only, so "has it" and "has it not" become two columns.
    strata = np.column_stack([labels, 1 - labels]) if labels.shape[1] == 1 else labels
    assignment = np.full(n, "train", dtype=object)
    rest = np.arange(n)
    try:
        if ratios[2] > 0:
            rest, test = _stratified(strata, rest, ratios[2], seed)
            assignment[test] = "test"
        if ratios[1] > 0:
            _, val = _stratified(strata, rest, ratios[1] / (ratios[0] + ratios[1]),
                                 (seed + 1) % (values.SEED_MAX + 1))
            assignment[val] = "val"
    except ValueError:  # scikit-learn: "the resulting train set will be empty"
        raise DataError(f"{n} record(s) are too few to split {':'.join(f'{r:g}' for r in ratios)} into train, "
                        "val and test (each needs at least one)") from None
    assignment = assignment.astype("<U5")
    repair_coverage(labels, assignment)
    top_up(labels, assignment)
    uncovered = uncovered_classes(labels, assignment)
    if uncovered:
        which = (f"classes {', '.join(str(class_names[c]) for c in uncovered)}" if class_names is not None
                 else f"class index(es) {uncovered}")
        warnings.warn(f"{which} have fewer than {MIN_FOR_COVERAGE} records and cannot appear in "
                      f"both {' and '.join(COVERED)}", stacklevel=2)
    return assignment


def _stratified(labels: np.ndarray, index: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `index` into (kept, taken) with `fraction` taken, stratified on `labels[index]`. The stratifier's
    draw is cached by its inputs (`ecg.data.cache.store_draw`): a search launched again on the same records
    and seed does not wait for scikit-learn's import before Ray starts."""
    strata = np.ascontiguousarray(labels[index])
    key = _draw_key(strata, fraction, seed)
    kept, taken = _cached_draw(key, len(index))
    if kept is None:
        # Imported here: iterstrat brings scikit-learn, which a trial's worker (it imports this module through
        # search.data, never splitting) would otherwise load before its first epoch.
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        kept, taken = next(splitter.split(np.zeros(len(index)), strata))
        cache.store_draw(key, {"kept": kept, "taken": taken})
    return index[kept], index[taken]


def _draw_key(strata: np.ndarray, fraction: float, seed: int) -> str:
    stratifier = f"iterative-stratification {metadata.version('iterative-stratification')}"
    digest = hashlib.sha256(f"{DRAW_VERSION} {stratifier} {strata.dtype.str} {strata.shape} {fraction!r} {seed}".encode())
    digest.update(memoryview(strata.reshape(-1)).cast("B"))
    return f"split-{digest.hexdigest()[:32]}"


def _cached_draw(key: str, n: int) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """The draw kept for `key`, if it is one: kept and taken together number each of the `n` records once."""
    saved = cache.load_draw(key)
    if saved is None or set(saved) != {"kept", "taken"}:
        return None, None
    kept, taken = saved["kept"], saved["taken"]
    both = np.concatenate([kept, taken])
    if both.dtype.kind not in "iu" or both.ndim != 1 or len(both) != n or not np.array_equal(np.sort(both), np.arange(n)):
        return None, None
    return kept, taken


def _counts(labels: np.ndarray, assignment: np.ndarray) -> dict[str, np.ndarray]:
    return {name: labels[assignment == name].sum(axis=0) for name in SPLITS}


def repair_coverage(labels: np.ndarray, assignment: np.ndarray) -> None:
    """Move records (in place) so that every class with enough records reaches train and test.

    A record is moved out of a split only when that split keeps at least one record of each class the
    record carries (and, for train and test, of the classes that must stay covered), so a repair never
    breaks another class. Donors are taken from the split with the most records of the class; among them
    the record with the fewest labels moves.
    """
    totals = labels.sum(axis=0)
    needed = totals >= MIN_FOR_COVERAGE
    for target in COVERED:
        for c in np.flatnonzero(needed):
            counts = _counts(labels, assignment)
            if counts[target][c] > 0:
                continue
            donors = sorted((s for s in SPLITS if s != target and counts[s][c] > 0), key=lambda s: -counts[s][c])
            for donor in donors:
                if counts[donor][c] < 2 and donor in COVERED:
                    continue  # the donor would lose its only record of c
                candidates = np.flatnonzero((assignment == donor) & (labels[:, c] == 1))
                safe = [i for i in candidates if np.all(counts[donor][labels[i] == 1] >= 2)]
                if safe:
                    best = min(safe, key=lambda i: labels[i].sum())
                    assignment[best] = target
                    break


def top_up(labels: np.ndarray, assignment: np.ndarray) -> None:
    """Move records (in place) from train to val and test until each holds `MINIMUM` records, while train keeps
    its own minimum: what a 7:1:2 split of a dozen records leaves short. The record moved is a labelled one whose
    rarest class train holds most of, so that coverage suffers least."""
    for part in ("val", "test"):
        while (assignment == part).sum() < MINIMUM[part] and (assignment == "train").sum() > MINIMUM["train"]:
            train = np.flatnonzero(assignment == "train")
            in_train = labels[train].sum(axis=0)

            def safety(record: int) -> float:
                classes = np.flatnonzero(labels[record])
                return float(in_train[classes].min()) if len(classes) else -1.0

            assignment[max(train, key=lambda r: (safety(r), -r))] = part


def uncovered_classes(labels: np.ndarray, assignment: np.ndarray) -> list[int]:
    """Indices of classes that are absent from train or test."""
    counts = _counts(np.asarray(labels), np.asarray(assignment))
    return [int(c) for c in range(np.asarray(labels).shape[1]) if any(counts[s][c] == 0 for s in COVERED)]


def split_sizes(assignment: np.ndarray) -> dict[str, int]:
    return {name: int(np.sum(np.asarray(assignment) == name)) for name in SPLITS}


def save_split(path: str | os.PathLike, record_ids: Sequence[str], assignment: np.ndarray) -> Path:
    """Write `record_id,split` rows (CSV, header line) and return the path."""
    if len(record_ids) != len(assignment):
        raise DataError(f"{len(record_ids)} record ids but {len(assignment)} split entries")
    path = Path(path)
    pd.DataFrame({"record_id": list(record_ids), "split": list(assignment)}).to_csv(path, index=False)
    return path


def load_split(path: str | os.PathLike, record_ids: Sequence[str]) -> np.ndarray:
    """The split saved at `path`, in the order of `record_ids`; every record must be listed exactly once."""
    path = Path(path)
    frame = read_text_csv(path, "split CSV")
    if list(frame.columns) != ["record_id", "split"]:
        raise DataError(f"{path}: columns must be record_id,split (got {','.join(frame.columns)})")
    bad = frame[~frame["split"].isin(SPLITS)]
    if len(bad):
        row = bad.index[0]
        raise DataError(f"{path}, line {row + 2}: split {values.quote(bad['split'].iloc[0])} is not train, val or "
                        "test")
    duplicated = frame["record_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(f"{path}, line {row + 2}: record {values.quote(frame['record_id'].iloc[row])} listed twice")
    mapping = dict(zip(frame["record_id"], frame["split"]))
    missing = [rid for rid in record_ids if rid not in mapping]
    if missing:
        raise DataError(f"{path}: {len(missing)} record(s) of the dataset are not in the split "
                        f"(first: {', '.join(map(values.quote, missing[:5]))})")
    return np.array([mapping[rid] for rid in record_ids], dtype="<U5")
