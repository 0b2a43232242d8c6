"""Bringing any source onto the common form: Hefei units (int16, 4.88 uV/unit), the target rate and length.

Rules (also in docs/data.md):
- Physical values (mV, uV, V) become Hefei units: round(mV * UNITS_PER_MV), clipped to the int16 range
  (+-159.9 mV, far outside any real ECG, so clipping only touches saturated or broken samples). NaN samples
  (WFDB's "no value") become 0, the baseline.
- Another sampling rate is resampled with a polyphase filter (`scipy.signal.resample_poly`, up/down reduced
  by their gcd).
- Length: a longer record keeps its FIRST `length` samples; a shorter one is padded with zeros (baseline)
  at the end. The first seconds are kept because every database starts its recording at the same moment
  of the protocol, and padding at the end keeps sample t at time t/fs.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ecg.data.dataset import UNITS_PER_MV

INT16_MIN, INT16_MAX = -32768, 32767
UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}


def mv_per_unit(unit: str) -> float | None:
    """How many mV one `unit` is ('mV', 'uV', 'V', ...), or None for a unit we do not know."""
    return UNIT_TO_MV.get(unit.strip().lower())


def to_hefei_units(millivolts: np.ndarray) -> np.ndarray:
    """float mV `[..., T]` -> int16 Hefei units (rounded, clipped to int16; NaN -> 0)."""
    units = np.nan_to_num(np.asarray(millivolts, dtype=np.float64) * UNITS_PER_MV, nan=0.0)
    return np.clip(np.rint(units), INT16_MIN, INT16_MAX).astype(np.int16)


def resample(signal: np.ndarray, fs_in: float, fs_out: int) -> np.ndarray:
    """Resample `[leads, T]` along time from `fs_in` to `fs_out` Hz (no-op when equal)."""
    if fs_in == fs_out:
        return signal
    ratio = Fraction(fs_out) / Fraction(fs_in).limit_denominator(1000)
    # Imported here: scipy.signal is slow to import, and every search worker would pay for it at start-up
    # for a function only the data loading in the driver calls.
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)


def fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Keep the first `length` samples, or pad zeros at the end up to `length`."""
    n = signal.shape[-1]
    if n >= length:
        return signal[..., :length]
    pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - n)]
    return np.pad(signal, pad)
