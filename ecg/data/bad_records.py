"""Records that cannot be read: one line that counts them and names the first few, or, with
`skip_bad_records=True`, the rest loaded and the bad ones kept in `ECGDataset.skipped` with their reasons."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ecg.data.dataset import ECGDataset
from ecg.data.errors import DataError

SHOWN = 3  # reasons quoted in the one-line error
HINT = "pass skip_bad_records=True (--skip-bad-records) to load the rest"


def summary(source: object, reasons: Mapping[str, str], total: int) -> str:
    """'SOURCE: K of N records cannot be read (first: reason; reason; reason)', one line."""
    first = "; ".join(" ".join(reason.split()) for reason in list(reasons.values())[:SHOWN])
    return f"{source}: {len(reasons)} of {total} records cannot be read (first: {first})"


def keep_readable(dataset: ECGDataset, failures: Mapping[int, str], *, source: object,
                  skip: bool) -> ECGDataset:
    """`dataset` without the records at the indices in `failures` ({index: reason}), which are recorded in
    `skipped`; without `skip`, any failure is a DataError (see `summary`)."""
    if not failures:
        return dataset
    reasons = {dataset.record_ids[i]: reason for i, reason in sorted(failures.items())}
    if not skip:
        raise DataError(f"{summary(source, reasons, len(dataset))}; {HINT}")
    keep = np.ones(len(dataset), dtype=bool)
    keep[list(failures)] = False
    kept = dataset.subset(keep)
    kept.skipped = {**dataset.skipped, **reasons}
    return kept
