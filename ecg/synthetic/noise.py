"""Recording nuisances, all scaled by one `noise` strength (0 = a clean recording, 1 = typical, 2 = poor).

- baseline wander: breathing and electrode drift, a random smooth series below 0.7 Hz, per lead;
- mains interference: 50 Hz (the study's grid) and a little 100 Hz, in about a third of the records;
- muscle noise: broadband electromyographic noise, stronger in some records (a tense patient) than others;
- gain: per record (amplifier calibration, body build) and per lead (electrode contact) amplitude variation.
Wander and mains are drawn as coefficients of a fixed sine/cosine basis, so the whole set costs one matrix
product instead of a trigonometric function per sample.
"""
from __future__ import annotations

import numpy as np

WANDER_STEP_HZ = 0.05  # basis spacing: 1/20 s, so a 10-s record sees a random, non-repeating drift
WANDER_MAX_HZ = 0.7
MAINS_HZ = 50.0
MUSCLE_BANK_ROWS = 32


def _basis(fs: int, length: int) -> tuple[np.ndarray, int]:
    """`[2F, length]` sines and cosines: the wander frequencies, then 50 Hz and 100 Hz (where below Nyquist)."""
    t = np.arange(length) / fs
    freqs = list(np.arange(WANDER_STEP_HZ, WANDER_MAX_HZ + 1e-9, WANDER_STEP_HZ))
    n_wander = len(freqs)
    freqs += [f for f in (MAINS_HZ, 2 * MAINS_HZ) if f < fs / 2]
    arg = 2 * np.pi * np.asarray(freqs)[:, None] * t[None, :]
    return np.concatenate([np.sin(arg), np.cos(arg)]).astype(np.float32), n_wander


def add_noise(signals: np.ndarray, noise: float, fs: int, rng: np.random.Generator, unit: float = 1.0) -> np.ndarray:
    """Add the nuisances to `signals` [n, leads, length] (float32, `unit` per mV) in place and return it."""
    if noise <= 0:
        return signals
    n, n_leads, length = signals.shape
    basis, n_wander = _basis(fs, length)
    n_freq = basis.shape[0] // 2
    coef = np.zeros((n, n_leads, n_freq), dtype=np.float32)
    # Wander: amplitude falling with frequency (drift is mostly slow), total ~0.05-0.4 mV per record.
    wander_mv = unit * noise * rng.lognormal(np.log(0.12), 0.6, (n, 1, 1))
    fall = 1.0 / np.arange(1, n_wander + 1) ** 0.8
    coef[:, :, :n_wander] = wander_mv * fall / np.sqrt((fall**2).sum()) * rng.standard_normal((n, n_leads, n_wander))
    # Mains: one phase per record (one source), lead-dependent pick-up.
    mains_mv = unit * noise * 0.03 * (rng.random((n, 1, 1)) < 0.35) * rng.uniform(0.3, 1.0, (n, 1, 1))
    harmonics = np.array([1.0, 0.3])[: n_freq - n_wander]  # 50 Hz, and 100 Hz where the rate allows
    coef[:, :, n_wander:] = mains_mv * rng.uniform(0.5, 1.0, (n, n_leads, 1)) * harmonics
    phase = rng.uniform(0, 2 * np.pi, (n, 1, n_freq))
    sin_coef, cos_coef = coef * np.cos(phase), coef * np.sin(phase)
    both = np.concatenate([sin_coef, cos_coef], axis=2).reshape(n * n_leads, 2 * n_freq).astype(np.float32)
    signals += (both @ basis).reshape(n, n_leads, length)
    # Muscle: white noise, 5-40 uV rms typical. Each lead takes a random window of a small bank of Gaussian
    # noise: drawing 40,000 normal numbers per record would cost more than the rest of the generator.
    muscle_mv = unit * noise * rng.lognormal(np.log(0.012), 0.5, (n, 1, 1)).astype(np.float32)
    bank = rng.standard_normal((MUSCLE_BANK_ROWS, 2 * length), dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(bank, length, axis=1)
    muscle = windows[rng.integers(0, MUSCLE_BANK_ROWS, (n, n_leads)), rng.integers(0, length, (n, n_leads))]
    muscle *= muscle_mv
    signals += muscle
    return signals


def breathing(period_s: np.ndarray, fs: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """`[n, length]` slow amplitude modulation around 1: the heart moves with each breath (3-5 % either way)."""
    t = np.arange(length, dtype=np.float32) / fs
    depth = rng.uniform(0.03, 0.05, (len(period_s), 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (len(period_s), 1)).astype(np.float32)
    return 1 + depth * np.sin(2 * np.pi * t / period_s[:, None].astype(np.float32) + phase)


def gains(n: int, n_leads: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """`[n, n_leads]` multiplicative gains: per record (sd 5 % at noise 1) times per lead (sd 3 %)."""
    record = rng.lognormal(0.0, 0.05 * noise, (n, 1))
    lead = rng.lognormal(0.0, 0.03 * noise, (n, n_leads))
    return (record * lead).astype(np.float32)
