"""Per-lead statistics and spectral band powers of every record, vectorised over the whole set."""
from __future__ import annotations

import numpy as np
from scipy.signal import welch

from ecg.data.dataset import ECGDataset
from ecg.features.layout import BANDS_HZ, LEAD_STATS

CHUNK = 512  # records converted to float at once: bounded memory on 20,000-record sets
POWER_FLOOR = 1e-8  # mV^2: a flat lead's log power stays finite


def millivolts(dataset: ECGDataset, rows: slice) -> np.ndarray:
    """`signals[rows]` as float32 mV."""
    return dataset.signals[rows].astype(np.float32) / np.float32(dataset.units_per_mv)


def band_powers(x: np.ndarray, fs: float, bands: tuple[tuple[float, float], ...] = BANDS_HZ) -> np.ndarray:
    """`[..., len(bands)]` power (mV^2) of `x[..., T]` in each [low, high) band, from Welch's periodogram with
    2 s Hann segments (0.5 Hz resolution; the whole record when shorter). A sine of amplitude A inside a band
    gives A^2 / 2 there."""
    freqs, psd = welch(x, fs=fs, nperseg=min(x.shape[-1], int(2 * fs)), axis=-1)
    df = freqs[1] - freqs[0]
    return np.stack([psd[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) * df for lo, hi in bands], axis=-1)


def lead_stats(x: np.ndarray, fs: float) -> np.ndarray:
    """`[N, L, len(LEAD_STATS)]` float32 from `x[N, L, T]` (mV); a flat lead gives 0 skew and kurtosis."""
    x = x.astype(np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    std = centred.std(axis=-1)
    safe = np.where(std > 0, std, 1.0)[..., None]
    z = centred / safe
    flat = (std == 0)
    skew = np.where(flat, 0.0, (z**3).mean(axis=-1))
    kurtosis = np.where(flat, 0.0, (z**4).mean(axis=-1) - 3.0)
    low, high = np.percentile(x, [1, 99], axis=-1)
    diff_std = np.diff(x, axis=-1).std(axis=-1)
    log_power = np.log10(np.maximum(band_powers(x, fs), POWER_FLOOR))
    values = np.concatenate([np.stack([std, high - low, skew, kurtosis, diff_std], axis=-1), log_power], axis=-1)
    assert values.shape[-1] == len(LEAD_STATS)
    return values.astype(np.float32)


def stats_features(dataset: ECGDataset) -> np.ndarray:
    """`[N, leads * len(LEAD_STATS)]` float32, lead-major (the order of `layout.stats_names`)."""
    n = len(dataset)
    out = np.empty((n, dataset.n_leads * len(LEAD_STATS)), dtype=np.float32)
    for start in range(0, n, CHUNK):
        rows = slice(start, min(n, start + CHUNK))
        out[rows] = lead_stats(millivolts(dataset, rows), dataset.fs).reshape(rows.stop - rows.start, -1)
    return out
