"""Independent ECG measurements for the synthetic-data tests: they read only the signals (mV), lead names and
sampling rate, never the generator's parameters, the way a reader (or a simple ECG analyser) would.

R peaks from a multi-lead slope envelope; a median beat; QRS onset/offset where the multi-lead slope rises
above a fraction of its peak; P onset where the multi-lead amplitude before the QRS falls to a fraction of the
P peak; net QRS areas for the frontal axis; amplitudes for voltage criteria; signed T amplitude at T peak.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, filtfilt, find_peaks


@dataclass
class Measures:
    heart_rate: float  # beats/min from the median RR
    rr_cv: float  # coefficient of variation of RR
    qrs_ms: float
    pr_ms: float  # NaN when no P wave is found
    axis_deg: float
    limb_pp_mv: float  # largest QRS peak-to-peak over the six limb leads
    r_avl_mv: float  # R wave in aVL
    rv5_mv: float
    sokolow_mv: float  # SV1 + RV5
    t_mv: dict  # signed T amplitude per lead
    p_ii_mv: float  # P amplitude in lead II


def _lead(signal: np.ndarray, leads: list[str], name: str) -> np.ndarray:
    return signal[leads.index(name)]


def r_peaks(mv: np.ndarray, fs: int) -> np.ndarray:
    """QRS locations, Pan-Tompkins style: 8-30 Hz band (QRS energy, not P/T), squared slope summed over leads,
    80-ms moving integration, peaks at least 250 ms apart above 30 % of the envelope's high percentile."""
    b, a = butter(2, [8 / (fs / 2), min(30 / (fs / 2), 0.9)], btype="band")
    band = filtfilt(b, a, mv, axis=1)
    energy = (np.diff(band, axis=1) ** 2).sum(axis=0)
    envelope = uniform_filter1d(energy, max(1, int(0.08 * fs)))
    edge = int(0.3 * fs)  # filter transients at the record's ends do not set the scale
    height = 0.15 * np.percentile(envelope[edge:-edge], 99.5)
    peaks, _ = find_peaks(envelope, height=height, distance=int(0.25 * fs))
    return peaks


def median_beat(mv: np.ndarray, peaks: np.ndarray, fs: int, before: float = 0.45, after: float = 0.6) -> np.ndarray:
    b, a = int(before * fs), int(after * fs)
    keep = [p for p in peaks if p - b >= 0 and p + a <= mv.shape[1]]
    if not keep:
        raise ValueError("no complete beat")
    return np.median(np.stack([mv[:, p - b : p + a] for p in keep]), axis=0)


def measure(mv: np.ndarray, leads: list[str], fs: int) -> Measures:
    """All measures of one record `mv` [leads, samples] in millivolts."""
    mv = mv - np.median(mv, axis=1, keepdims=True)
    peaks = r_peaks(mv, fs)
    rr = np.diff(peaks) / fs
    beat = median_beat(mv, peaks, fs)
    centre = int(0.45 * fs)
    # QRS: the stretch around the steepest point where the multi-lead slope stays above 5 % of that peak. The
    # QRS is by far the steepest wave, and it is separated from P and T by (nearly) flat PR and ST segments.
    slope = uniform_filter1d(np.abs(np.gradient(beat, axis=1)).sum(axis=0) * fs, max(1, int(0.006 * fs)))
    search = slice(centre - int(0.1 * fs), centre + int(0.1 * fs))
    top = int(slope[search].argmax()) + search.start
    quiet = slope < 0.05 * slope[top]
    quiet[[0, -1]] = True  # a noisy record may never fall quiet: then the QRS runs to the window's edge
    onset = top - int(np.argmax(quiet[top::-1]))
    offset = min(top + int(np.argmax(quiet[top:])), beat.shape[1] - int(0.2 * fs))
    qrs_ms = (offset - onset) / fs * 1000
    base = beat[:, max(onset - int(0.012 * fs), 0)][:, None]
    beat = beat - base
    qrs = beat[:, onset : offset + 1]
    i, ii = _lead(qrs, leads, "I"), _lead(qrs, leads, "II")
    area_i, area_ii = i.sum(), ii.sum()
    axis = float(np.degrees(np.arctan2((2 * area_ii - area_i) / np.sqrt(3), area_i)))
    limb = np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2])
    limb_pp = float((limb.max(axis=1) - limb.min(axis=1)).max())
    r_avl = float(max((i - ii / 2).max(), 0))
    rv5 = float(max(_lead(qrs, leads, "V5").max(), 0))
    sv1 = float(max(-_lead(qrs, leads, "V1").min(), 0))
    # T wave: the largest multi-lead deflection between 60 ms after QRS end and 60 % of the RR interval.
    rr_med = float(np.median(rr)) if len(rr) else 1.0
    t_lo = offset + int(0.06 * fs)
    t_hi = min(max(centre + int(0.6 * rr_med * fs), t_lo + int(0.08 * fs)), beat.shape[1])
    t_seg = beat[:, t_lo:t_hi]
    t_peak = int(np.abs(t_seg).sum(axis=0).argmax())
    t_mv = {name: float(t_seg[k, t_peak]) for k, name in enumerate(leads)}
    # P wave: the last multi-lead amplitude hump 20-380 ms before QRS onset; its onset is where, going back from the
    # peak, the amplitude falls below 5 % of the peak or stops falling (a P wave riding on the previous T wave).
    p_lo = max(onset - int(0.38 * fs), 0)
    p_seg = uniform_filter1d(np.abs(beat[:, p_lo : onset - int(0.02 * fs)]).sum(axis=0), max(1, int(0.01 * fs)))
    pr_ms, p_ii = float("nan"), 0.0
    humps, _ = find_peaks(np.pad(p_seg, 1), prominence=0.02) if p_seg.size else ([], None)
    if len(humps):
        p_peak = int(humps[-1]) - 1  # the last hump before the QRS is the P wave (earlier ones: the last T)
        start = p_peak
        while start > 0 and p_seg[start] >= 0.05 * p_seg[p_peak] and p_seg[start - 1] <= p_seg[start]:
            start -= 1
        pr_ms = (onset - (p_lo + start)) / fs * 1000
        p_ii = float(_lead(beat, leads, "II")[p_lo + p_peak])
    return Measures(
        heart_rate=60.0 / rr_med,
        rr_cv=float(rr.std() / rr.mean()) if len(rr) > 1 else 0.0,
        qrs_ms=qrs_ms,
        pr_ms=pr_ms,
        axis_deg=axis,
        limb_pp_mv=limb_pp,
        r_avl_mv=r_avl,
        rv5_mv=rv5,
        sokolow_mv=rv5 + sv1,
        t_mv=t_mv,
        p_ii_mv=p_ii,
    )
