"""A vectorised multi-lead delineator: beats, a median beat per record, and its wave boundaries.

neurokit2 delineates one lead of one record per call, at about 10 records/s per core (bench/results/features),
too slow for a 20,000-record set; this works on arrays of records at once, with the classic steps:
  1. QRS detection: 5-20 Hz band-pass, squared slope summed over the leads, 100 ms moving integration,
     local maxima above a quarter of the record's 99th percentile, at least 200 ms apart.
  2. Each beat's fiducial is refined to the largest band-passed deflection within 80 ms.
  3. The median beat of each record (up to MAX_BEATS beats, 0.5-40 Hz filtered, all leads): averaging away
     noise and beats that are not time-locked (AF's fibrillatory waves disappear, so no P wave is found).
  4. On the median beat: QRS onset/offset where the spatial velocity (summed absolute slope over the leads)
     falls below 10% of its peak; T end where the spatial magnitude falls below 20% of the T peak's; the P
     wave as the largest deflection before the QRS, present only above 30 uV, its onset at 20% of its peak.
A record with fewer than two beats (a flat line, pure noise) gets NaN everywhere: never an exception.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import butter, sosfiltfilt

MAX_BEATS = 24
BEFORE_S, AFTER_S = 0.45, 0.6  # median-beat window around the fiducial
P_MIN_MV = 0.03


@dataclass
class Delineation:
    """Per record (NaN where not found): RR statistics in seconds, and wave boundaries in seconds relative to
    the median beat's fiducial (the R peak); `qrs_area` holds each lead's net QRS area (mV s)."""

    rr_median: np.ndarray
    rr_sdnn: np.ndarray
    rr_rmssd: np.ndarray
    p_onset: np.ndarray
    qrs_onset: np.ndarray
    qrs_offset: np.ndarray
    t_end: np.ndarray
    qrs_area: np.ndarray  # [N, leads]


def _filter(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    high = min(high, 0.45 * fs)
    sos = butter(2, [low, high], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def detect_beats(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(record index, sample) of every detected QRS in `x[N, L, T]` (mV), sorted by record then time."""
    band = _filter(x, fs, 5.0, 20.0)
    slope = np.diff(band, axis=-1, prepend=band[..., :1])
    energy = uniform_filter1d((slope**2).sum(axis=1), size=max(1, int(0.1 * fs)), axis=-1)
    threshold = np.maximum(0.25 * np.percentile(energy, 99, axis=-1, keepdims=True), 1e-12)
    refractory = max(1, int(0.2 * fs))
    local_max = maximum_filter1d(energy, size=2 * refractory + 1, axis=-1, mode="nearest")
    record, sample = np.nonzero((energy == local_max) & (energy > threshold))
    # Equal maxima (a plateau) can yield two peaks closer than the refractory period: keep the first.
    keep = np.ones(len(sample), dtype=bool)
    keep[1:] = (record[1:] != record[:-1]) | (np.diff(sample) > refractory)
    record, sample = record[keep], sample[keep]
    # Refine to the largest deflection of the band-passed leads within 80 ms.
    half = max(1, int(0.08 * fs))
    deflection = np.abs(band).sum(axis=1)
    window = np.clip(sample[:, None] + np.arange(-half, half + 1)[None, :], 0, x.shape[-1] - 1)
    sample = window[np.arange(len(sample)), np.argmax(deflection[record[:, None], window], axis=1)]
    return record, sample


def rr_statistics(record: np.ndarray, sample: np.ndarray, n: int, fs: float) -> tuple[np.ndarray, ...]:
    """Median RR, SDNN and RMSSD (seconds) per record; NaN below 2 beats (3 for RMSSD)."""
    same = record[1:] == record[:-1]
    rr = pd.Series(np.diff(sample)[same] / fs, index=record[1:][same])
    grouped = rr.groupby(level=0)
    median = grouped.median().reindex(range(n)).to_numpy()
    sdnn = grouped.std(ddof=0).reindex(range(n)).to_numpy()
    successive = rr.groupby(level=0).diff()
    rmssd = np.sqrt((successive**2).groupby(level=0).mean()).reindex(range(n)).to_numpy()
    return median, sdnn, rmssd


def median_beats(x: np.ndarray, record: np.ndarray, sample: np.ndarray, fs: float) -> np.ndarray:
    """`[N, L, W]` median beat of each record around its fiducials (NaN for a record with no whole beat)."""
    n, leads, length = x.shape
    before, after = int(BEFORE_S * fs), int(AFTER_S * fs)
    whole = (sample >= before) & (sample + after < length)
    record, sample = record[whole], sample[whole]
    first = np.searchsorted(record, record, side="left")
    slot = np.arange(len(record)) - first
    take = slot < MAX_BEATS
    record, sample, slot = record[take], sample[take], slot[take]
    clean = _filter(x, fs, 0.5, 40.0)
    offsets = np.arange(-before, after + 1)
    # Beats on the last axis, NaN-padded to MAX_BEATS: one sort gives every record's median (NaN sorts last).
    beats = np.full((n, leads, len(offsets), MAX_BEATS), np.nan, dtype=np.float32)
    # clean[record, :, window] puts the beat axis first and the window before the leads: [beats, W, L].
    windows = clean[record[:, None], :, sample[:, None] + offsets[None, :]]
    beats[record, :, :, slot] = windows.transpose(0, 2, 1)
    beats.sort(axis=-1)
    count = np.bincount(record, minlength=n)
    low = np.maximum(count - 1, 0) // 2
    high = np.minimum(count // 2, MAX_BEATS - 1)
    pick = lambda k: np.take_along_axis(beats, k[:, None, None, None], axis=-1)[..., 0]
    median = (pick(low) + pick(high)) / 2
    median[count == 0] = np.nan
    return median


def _masked_argmax(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, the index of the largest value in [lo, hi) (lo when the range is empty)."""
    idx = np.arange(values.shape[1])[None, :]
    inside = (idx >= lo[:, None]) & (idx < hi[:, None])
    return np.where(inside, values, -np.inf).argmax(axis=1)


def _last_below(values: np.ndarray, limit: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, the last index in [lo, hi) with values < limit; -1 where none."""
    idx = np.arange(values.shape[1])[None, :]
    hit = (values < limit[:, None]) & (idx >= lo[:, None]) & (idx < hi[:, None])
    last = values.shape[1] - 1 - hit[:, ::-1].argmax(axis=1)
    return np.where(hit.any(axis=1), last, -1)


def _first_below(values: np.ndarray, limit: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row, the first index in [lo, hi) with values < limit; -1 where none."""
    idx = np.arange(values.shape[1])[None, :]
    hit = (values < limit[:, None]) & (idx >= lo[:, None]) & (idx < hi[:, None])
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


def delineate_beats(beats: np.ndarray, rr: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Wave boundaries (sample indices into the beat window, NaN when not found) and per-lead QRS areas."""
    n, _, width = beats.shape
    valid = np.isfinite(beats).all(axis=(1, 2)) & np.isfinite(rr)
    beats = np.nan_to_num(beats)
    rr = np.where(np.isfinite(rr), rr, 1.0)
    r = int(BEFORE_S * fs)
    ones = np.ones(n, dtype=int)
    s = lambda seconds: np.round(np.asarray(seconds) * fs).astype(int)

    # QRS: spatial velocity, smoothed over 20 ms; boundaries at 10% of its peak around the fiducial.
    velocity = uniform_filter1d(np.abs(np.diff(beats, axis=-1, append=beats[..., -1:])).sum(axis=1),
                                size=max(1, int(0.02 * fs)), axis=-1)
    up = _masked_argmax(velocity, ones * (r - s(0.08)), ones * (r + 1))
    down = _masked_argmax(velocity, ones * r, ones * (r + s(0.08) + 1))
    peak = np.maximum(velocity[np.arange(n), up], velocity[np.arange(n), down])
    limit = 0.1 * peak
    onset = _last_below(velocity, limit, np.maximum(up - s(0.12), 0), up)
    offset = _first_below(velocity, limit, down + 1, np.minimum(down + s(0.16), width))
    found_qrs = valid & (onset >= 0) & (offset >= 0) & (peak > 0)
    onset, offset = np.where(found_qrs, onset, r - 1), np.where(found_qrs, offset, r + 1)

    # Baseline: the PR segment just before the QRS onset (20 ms), per lead.
    pr_window = np.clip(onset[:, None] + np.arange(-s(0.02), 1)[None, :], 0, width - 1)
    baseline = np.take_along_axis(beats, pr_window[:, None, :], axis=2).mean(axis=2, keepdims=True)
    level = beats - baseline
    magnitude = uniform_filter1d(np.sqrt((level**2).sum(axis=1)), size=max(1, int(0.02 * fs)), axis=-1)

    # T wave: its peak after the ST segment, before the next beat; its end at 20% of that peak.
    t_lo = offset + s(0.06)
    t_hi = np.minimum(r + s(np.minimum(0.55, 0.85 * rr)), width)
    t_peak = _masked_argmax(magnitude, t_lo, np.maximum(t_hi, t_lo + 1))
    t_amp = magnitude[np.arange(n), t_peak]
    t_end = _first_below(magnitude, 0.2 * t_amp, t_peak + 1, t_hi)
    found_t = found_qrs & (t_hi > t_lo) & (t_end >= 0) & (t_amp > 0)

    # P wave: the largest deflection between the previous beat's T wave and 30 ms before the QRS.
    p_lo = np.maximum(np.maximum(onset - s(0.36), r - s(0.55 * rr)), 0)
    p_hi = onset - s(0.03)
    p_peak = _masked_argmax(magnitude, p_lo, np.maximum(p_hi, p_lo + 1))
    p_amp = magnitude[np.arange(n), p_peak]
    p_onset = _last_below(magnitude, 0.2 * p_amp, p_lo, p_peak)
    found_p = found_qrs & (p_hi > p_lo) & (p_amp > P_MIN_MV) & (p_onset >= 0)

    idx = np.arange(width)[None, :]
    in_qrs = (idx >= onset[:, None]) & (idx <= offset[:, None])
    area = (level * in_qrs[:, None, :]).sum(axis=2) / fs
    nan = np.float64(np.nan)
    return {
        "p_onset": np.where(found_p, p_onset, nan) - r,
        "qrs_onset": np.where(found_qrs, onset, nan) - r,
        "qrs_offset": np.where(found_qrs, offset, nan) - r,
        "t_end": np.where(found_t, t_end, nan) - r,
        "qrs_area": np.where(found_qrs[:, None], area, nan),
    }


def delineate(x: np.ndarray, fs: float) -> Delineation:
    """Delineate every record of `x[N, L, T]` (mV) sampled at `fs` Hz (see the module docstring)."""
    n = len(x)
    record, sample = detect_beats(x, fs)
    rr_median, sdnn, rmssd = rr_statistics(record, sample, n, fs)
    waves = delineate_beats(median_beats(x, record, sample, fs), rr_median, fs)
    return Delineation(rr_median=rr_median, rr_sdnn=sdnn, rr_rmssd=rmssd,
                       p_onset=waves["p_onset"] / fs, qrs_onset=waves["qrs_onset"] / fs,
                       qrs_offset=waves["qrs_offset"] / fs, t_end=waves["t_end"] / fs, qrs_area=waves["qrs_area"])
