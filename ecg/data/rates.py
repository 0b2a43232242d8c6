"""A dataset at a lower sampling rate: every record resampled once and cached like a parsed set.

A search samples the input rate (`data/fs`) per trial, so the driver brings its records to each candidate rate
once (`resample_dataset`), not each trial. The polyphase filter is `ecg.data.scale.resample`
(`scipy.signal.resample_poly`), the one the readers use for a source at another rate, so records read at
100 Hz and records read at 500 Hz and resampled here go through the same filter. Values stay int16 Hefei units.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ecg.data.cache import default_cache_dir, fingerprint, load_cached, store
from ecg.data.dataset import ECGDataset
from ecg.data.scale import INT16_MAX, INT16_MIN, resample

# Bump when the resampled form changes, so old entries are not reused.
RATES_VERSION = 1
# Records resampled at a time: bounds the float64 copy the filter makes (512 x 8 x 5,000 x 8 bytes = 164 MB).
CHUNK = 512


def resampled_length(n_samples: int, fs_in: int, fs_out: int) -> int:
    """Samples per record at `fs_out` for records of `n_samples` at `fs_in`; ValueError unless whole."""
    if (n_samples * fs_out) % fs_in:
        raise ValueError(f"{n_samples} samples at {fs_in} Hz are not a whole number of samples at {fs_out} Hz")
    return n_samples * fs_out // fs_in


def resample_signals(signals: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """int16 `[N, leads, T]` at `fs_in` -> int16 `[N, leads, T * fs_out / fs_in]` at `fs_out`."""
    length = resampled_length(signals.shape[-1], fs_in, fs_out)
    out = np.empty((*signals.shape[:-1], length), dtype=np.int16)
    for start in range(0, len(signals), CHUNK):
        chunk = resample(np.asarray(signals[start:start + CHUNK], dtype=np.float64), fs_in, fs_out)
        out[start:start + CHUNK] = np.clip(np.rint(chunk[..., :length]), INT16_MIN, INT16_MAX)
    return out


def cache_key(dataset: ECGDataset, fs: int) -> str:
    """Entry name of `dataset` resampled to `fs`: its content fingerprint, the rate and `RATES_VERSION`."""
    text = f"{fingerprint(dataset)}\0{dataset.fs}\0{fs}\0{RATES_VERSION}"
    return "rate-" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def resample_dataset(dataset: ECGDataset, fs: int, *, cache_dir: str | os.PathLike | None = None,
                     use_cache: bool = True) -> ECGDataset:
    """`dataset` at `fs` Hz (the same object when it is already there); read from the dataset cache when this
    set was resampled to `fs` before. Only down: a rate above the records' would invent nothing but cost.
    Attached features (`ECGDataset.features`, computed from the records at their own rate) come along as they
    are, so a trial's features do not depend on its input rate."""
    if fs == dataset.fs:
        return dataset
    if fs > dataset.fs:
        raise ValueError(f"cannot resample records at {dataset.fs} Hz up to {fs} Hz; load them at {fs} Hz instead")
    if dataset.signals is None:
        raise ValueError("this dataset holds labels only; it has no signals to resample")
    resampled_length(dataset.n_samples, dataset.fs, fs)  # refuse before hashing or filtering anything
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(dataset, fs) if use_cache else None
    if key is not None:
        cached = load_cached(directory, key)
        if cached is not None:
            cached.features = dataset.features
            return cached
    out = dataclasses.replace(dataset, signals=resample_signals(dataset.signals, dataset.fs, fs), fs=fs,
                              skipped=dict(dataset.skipped), known_fingerprint=None)
    if key is not None:
        try:
            store(directory, key, out)
        except OSError as error:  # a full or read-only disk costs the next run the filtering, not this one its data
            warnings.warn(f"could not write the dataset cache in {directory}: {error}", stacklevel=2)
    return out
