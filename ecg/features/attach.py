"""Features joined to a run's splits: computed (or read from the cache) on the whole set, standardised on the
training split only, then set as each split's `ECGDataset.features`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ecg.data.dataset import ECGDataset
from ecg.data.source import Splits
from ecg.features.cache import cached_features
from ecg.features.standardise import FeatureScaling


def attach_features(splits: Splits, dataset: ECGDataset, cache_dir: Path | None = None) -> Splits:
    """Set `features` on `splits.train/val/test` (the parts of `dataset` by `splits.assignment`) and the
    training statistics they were standardised with as `splits.feature_scaling`; returns `splits`. The same records give the same features in a search trial, its winner's test evaluation and a
    retraining with `python -m ecg.train`."""
    if list(splits.record_ids) != list(dataset.record_ids):
        raise ValueError("the splits were not made from this dataset (their record ids differ)")
    raw = cached_features(dataset, cache_dir)
    assignment = np.asarray(splits.assignment)
    splits.feature_scaling = FeatureScaling.fit(raw.stats, raw.clinical, assignment == "train")
    inputs = splits.feature_scaling.transform(raw.stats, raw.clinical)
    for name in ("train", "val", "test"):
        getattr(splits, name).features = inputs[np.flatnonzero(assignment == name)]
    return splits
