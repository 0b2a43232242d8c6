"""Features as a model input: standardised with the training split's statistics only, missing values flagged.

Validation and test records are transformed with the training split's mean and spread, so nothing about them
leaks into the inputs. A missing measurement becomes 0 (the training mean) and its `<name>_missing` column 1.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# Standardised values are clipped: one record's extreme value (a lead that is nearly flat has a log power of
# -8) must not dominate the head's input.
CLIP = 8.0


@dataclass
class Standardiser:
    """Per-column mean and standard deviation of training rows (NaN ignored; a constant column gets 1)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray) -> Standardiser:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column with no value in training: mean 0
            mean = np.nanmean(train, axis=0)
            std = np.nanstd(train, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return cls(mean=mean.astype(np.float64), std=std.astype(np.float64))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Standardised float32 values, NaN -> 0, clipped to +-CLIP."""
        z = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
        return np.clip(np.nan_to_num(z, nan=0.0), -CLIP, CLIP).astype(np.float32)


@dataclass
class FeatureScaling:
    """The training split's statistics of both feature sets: what a run's model inputs were standardised with,
    kept in its model manifest (`ecg.predict`) so that new records are standardised the same way."""

    stats: Standardiser
    clinical: Standardiser

    @classmethod
    def fit(cls, stats: np.ndarray, clinical: np.ndarray, train_rows: np.ndarray) -> FeatureScaling:
        return cls(Standardiser.fit(stats[train_rows]), Standardiser.fit(clinical[train_rows]))

    def transform(self, stats: np.ndarray, clinical: np.ndarray) -> np.ndarray:
        """`[N, feature_width]` float32: standardised stats, standardised measurements, missing indicators."""
        missing = np.isnan(clinical).astype(np.float32)
        return np.concatenate([self.stats.transform(stats), self.clinical.transform(clinical), missing], axis=1)

    def to_dict(self) -> dict[str, dict[str, list[float]]]:
        """JSON-ready; floats written as Python floats, which JSON gives back exactly."""
        return {name: {"mean": part.mean.tolist(), "std": part.std.tolist()}
                for name, part in (("stats", self.stats), ("clinical", self.clinical))}

    @classmethod
    def from_dict(cls, values: dict[str, dict[str, list[float]]]) -> FeatureScaling:
        parts = {name: Standardiser(mean=np.asarray(values[name]["mean"], dtype=np.float64),
                                    std=np.asarray(values[name]["std"], dtype=np.float64))
                 for name in ("stats", "clinical")}
        return cls(**parts)


def model_inputs(stats: np.ndarray, clinical: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """`[N, feature_width]` float32: standardised stats, standardised measurements, missing indicators; the
    statistics come from `train_rows` (integer positions or a mask) only."""
    return FeatureScaling.fit(stats, clinical, train_rows).transform(stats, clinical)
