"""Raw features of a dataset, computed once and kept next to the parsed datasets, keyed by its fingerprint.

An entry `<cache_dir>/features-<fingerprint>-v<version>.npz` holds `stats[N, leads*stats]` and
`clinical[N, measurements]` (NaN where a measurement failed) and the record ids they belong to; it is written
to a temporary file and renamed, and read with `allow_pickle=False`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg.atomic import save_npz_atomic
from ecg.data.cache import UNREADABLE, default_cache_dir, fingerprint
from ecg.data.dataset import ECGDataset
from ecg.features.layout import CLINICAL, LEAD_STATS

# Bump when a feature's definition changes, so an old entry is not reused.
FEATURES_VERSION = 1


@dataclass
class RawFeatures:
    """Unstandardised features of every record of one dataset, in its record order."""

    stats: np.ndarray
    clinical: np.ndarray
    record_ids: list[str]


def compute(dataset: ECGDataset) -> RawFeatures:
    """Both feature sets of `dataset` (no cache)."""
    # Imported here: both bring scipy.signal, which a search whose features are cached does not need.
    from ecg.features.clinical import clinical_features
    from ecg.features.stats import stats_features

    return RawFeatures(stats=stats_features(dataset), clinical=clinical_features(dataset),
                       record_ids=list(dataset.record_ids))


def cache_path(dataset: ECGDataset, cache_dir: Path | None = None) -> Path:
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return directory / f"features-{fingerprint(dataset)}-v{FEATURES_VERSION}.npz"


def _read(path: Path, dataset: ECGDataset) -> RawFeatures | None:
    try:
        with np.load(path, allow_pickle=False) as entry:
            raw = RawFeatures(stats=entry["stats"], clinical=entry["clinical"], record_ids=entry["record_ids"].tolist())
    except UNREADABLE:
        return None
    expected = (len(dataset), dataset.n_leads * len(LEAD_STATS), len(CLINICAL))
    if (len(raw.record_ids), raw.stats.shape[1], raw.clinical.shape[1]) != expected \
            or raw.record_ids != list(dataset.record_ids):
        return None
    return raw


def cached_features(dataset: ECGDataset, cache_dir: Path | None = None) -> RawFeatures:
    """The features of `dataset`: read from the cache, else computed and stored there."""
    path = cache_path(dataset, cache_dir)
    raw = _read(path, dataset) if path.exists() else None
    if raw is not None:
        return raw
    raw = compute(dataset)
    with contextlib.suppress(OSError):  # a full or read-only cache: the features are still returned
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(path, {"stats": raw.stats, "clinical": raw.clinical,
                               "record_ids": np.array(raw.record_ids, dtype=str)})
    return raw
