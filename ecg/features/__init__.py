"""Hand-made per-record features: per-lead statistics and band powers, and clinical measurements.

    splits = ecg.data.source.split(dataset, seed=0)
    attach_features(splits, dataset)   # computed once per dataset (cached by fingerprint), standardised on
                                       # train only, set as splits.train/val/test.features

A model picks them with its `features` option (none, stats, clinical, both); they join its head with age and
sex (`ECGDataset.extra_inputs()`, columns named by `ecg.features.layout`).
"""
from ecg.features.attach import attach_features
from ecg.features.cache import RawFeatures, cached_features
from ecg.features.clinical import clinical_features
from ecg.features.layout import (
           CLINICAL,
           FEATURE_SETS,
           extra_columns,
           input_names,
           input_width,
)
from ecg.features.stats import stats_features

__all__ = ["CLINICAL", "FEATURE_SETS", "RawFeatures", "attach_features", "cached_features", "clinical_features",
           "extra_columns", "input_names", "input_width", "stats_features"]
