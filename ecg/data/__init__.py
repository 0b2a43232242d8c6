"""The ECG data layer: readers for Hefei text, WFDB and .npz into one `ECGDataset`, with a cache.

Splits, class weights and augmentation live in `ecg.data.split`, `ecg.data.weights` and `ecg.data.augment`.
"""
from ecg.data.cache import default_cache_dir, fingerprint
from ecg.data.dataset import (
    AGE_SEX_DIM,
    ALL_12_LEADS,
    FS,
    HEFEI_LEADS,
    N_SAMPLES,
    UNITS_PER_MV,
    UV_PER_UNIT,
    ECGDataset,
    age_sex_features,
)
from ecg.data.errors import DataError
from ecg.data.labels import empty_classes
from ecg.data.loader import FORMATS, detect_format, load_dataset, load_labels

__all__ = [
    "AGE_SEX_DIM", "ALL_12_LEADS", "FS", "HEFEI_LEADS", "N_SAMPLES", "UNITS_PER_MV", "UV_PER_UNIT",
    "DataError", "ECGDataset", "FORMATS", "age_sex_features", "default_cache_dir", "detect_format",
    "empty_classes", "fingerprint", "load_dataset", "load_labels",
]
