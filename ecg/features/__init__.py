"""Hand-made per-record features: per-lead statistics and band powers, and clinical measurements.

    splits = ecg.data.source.split(dataset, seed=0)
    attach_features(splits, dataset)   # computed once per dataset (cached by fingerprint), standardised on
                                       # train only, set as splits.train/val/test.features

A model picks them with its `features` option (none, stats, clinical, both); they join its head with age and
sex (`ECGDataset.extra_inputs()`, columns named by `ecg.features.layout`).
"""
from __future__ import annotations

import importlib
from typing import Any

# Names are loaded on first use (PEP 562): every trial's worker imports `ecg.features.layout` through its
# model's head, and the computing modules pull in scipy.signal, which a trial without features never needs.
_WHERE = {"attach_features": "attach", "RawFeatures": "cache", "cached_features": "cache",
          "clinical_features": "clinical", "stats_features": "stats", "CLINICAL": "layout",
          "FEATURE_SETS": "layout", "extra_columns": "layout", "input_names": "layout", "input_width": "layout"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
