"""`generate()`: labels first, then hearts that carry them, then beats, leads, nuisances and the Hefei scale."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.synthetic import diagnoses
from ecg.synthetic.dipole import RECORDED_LEADS, lead_combination, lead_vectors
from ecg.synthetic.heart import VENTRICULAR_ECTOPIC, Heart, oriented_qrs, render_qrs, render_templates
from ecg.synthetic.noise import add_noise, breathing, gains
from ecg.synthetic.rhythm import beat_times, place_beats

CHUNK = 256  # records rendered at once: big enough to vectorise, small enough to stay in cache-friendly memory
ELECTRODE_JITTER_DEG = 6.0
F_WAVE_DIR = np.array([-0.3, 0.55, 0.78], dtype=np.float32) / np.linalg.norm([-0.3, 0.55, 0.78])

# Voltage criteria the QRS is scaled into, with margins so per-record gain variation keeps the label true.
# Low voltage: every limb lead < 0.5 mV peak to peak. LV high voltage: RV5 > 2.5 mV, or Sokolow-Lyon
# SV1 + RV5 > 3.5 mV, or R in aVL > 1.1 mV.
NORMAL_LIMB_MIN_MV, NORMAL_RV5_MAX_MV, NORMAL_SOKOLOW_MAX_MV, NORMAL_R_AVL_MAX_MV = 0.7, 2.1, 3.0, 0.9
LOW_LIMB_MAX_MV = 0.4
HIGH_RV5_MIN_MV, HIGH_SOKOLOW_MIN_MV, HIGH_R_AVL_MIN_MV, HIGH_LIMB_MAX_MV = 2.95, 4.1, 1.3, 5.0


def generate(n: int, seed: int = 0, *, leads: Sequence[str] = HEFEI_LEADS, balanced: bool = False,
             noise: float = 1.0, fs: int = FS, length: int = N_SAMPLES) -> ECGDataset:
    """`n` synthetic records: int16 signals `[n, len(leads), length]` on the Hefei scale (`UNITS_PER_MV`), age
    and sex (a few % missing), multi-hot labels over `SYNTHETIC_CLASSES`. The same arguments give the same data.

    `balanced` draws every class about equally often instead of at the round-2 frequencies; `noise` scales
    every recording nuisance (0 = clean); `fs` and `length` set the sampling rate (Hz) and samples per record.
    """
    _check(n, noise, fs, length)
    leads = tuple(leads)
    combination = lead_combination(leads)
    root = np.random.SeedSequence(seed)
    label_seed, *chunk_seeds = root.spawn(1 + -(-n // CHUNK))
    label_rng = np.random.default_rng(label_seed)
    labels = diagnoses.sample_labels(n, balanced, label_rng)
    age, sex = diagnoses.demographics(labels, label_rng)
    signals = np.empty((n, len(leads), length), dtype=np.int16)
    for k, chunk_seed in enumerate(chunk_seeds):
        rows = slice(k * CHUNK, min(n, (k + 1) * CHUNK))
        units = _render(labels[rows], np.random.default_rng(chunk_seed), noise, fs, length)
        out = units if leads == RECORDED_LEADS else np.einsum("lr,nrt->nlt", combination, units)
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        signals[rows] = out
    return ECGDataset(signals=signals, age=age, sex=sex, labels=labels, class_names=list(diagnoses.SYNTHETIC_CLASSES),
                      record_ids=[f"syn{seed}-{i:06d}" for i in range(n)], lead_names=list(leads), fs=fs,
                      units_per_mv=UNITS_PER_MV)


def _check(n: int, noise: float, fs: int, length: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number of records, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if int(fs) != fs or fs < 100:
        raise ValueError(f"fs must be a whole number of Hz, at least 100, got {fs!r}")
    if int(length) != length or length < 2 * fs:
        raise ValueError(f"length must be at least 2 s of samples ({2 * fs} at {fs} Hz), got {length!r}")


def _render(labels: np.ndarray, rng: np.random.Generator, noise: float, fs: int, length: int) -> np.ndarray:
    """`[m, 8, length]` float32 of the recorded leads (I, II, V1-V6) on the Hefei scale, for one chunk."""
    m = len(labels)
    heart = Heart.normal(m, rng)
    diagnoses.apply(heart, labels, rng)
    directions = lead_vectors(m, rng, ELECTRODE_JITTER_DEG)
    qrs = render_qrs(heart, fs, oriented_qrs(heart))
    scale = _voltage_scale(qrs, directions, heart.voltage, rng)
    qrs *= scale[:, None, None]
    # What attenuates the QRS (fluid, fat, emphysema) attenuates every wave of every beat.
    low = np.flatnonzero(heart.voltage < 0)
    for field in (heart.t_vec, heart.p_vec, heart.st_vec, heart.j_vec, heart.spike_vec):
        field[low] *= scale[low, None]
    templates, pre = render_templates(heart, fs, qrs, rng)
    templates[low, VENTRICULAR_ECTOPIC] *= scale[low, None, None]
    onsets, kinds = beat_times(heart, length / fs, rng)
    vector = place_beats(templates, pre, onsets, kinds, fs, length)
    # Beat-to-beat amplitude: breathing moves the heart against the electrodes (a few %).
    vector *= breathing(heart.resp_period, fs, length, rng)[:, None, :]
    _add_fibrillation(vector, heart, fs, rng)
    # Recorded leads: projections on the lead directions, times each record's and lead's gain, in Hefei units.
    gain = gains(m, len(RECORDED_LEADS), noise, rng) * np.float32(UNITS_PER_MV)
    recorded = np.matmul((directions * gain[:, None, :]).transpose(0, 2, 1), vector)  # [m, 8, length]
    return add_noise(recorded, noise, fs, rng, unit=UNITS_PER_MV)


def _voltage_scale(qrs: np.ndarray, directions: np.ndarray, voltage: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """`[m]` factor bringing each QRS into its voltage class (measured on the noise-free template leads)."""
    leads = np.matmul(qrs, directions)  # [m, W, 8]
    i, ii = leads[:, :, 0], leads[:, :, 1]
    limb = np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2], axis=2)
    limb_pp = (limb.max(axis=1) - limb.min(axis=1)).max(axis=1)
    rv5 = np.maximum(leads[:, :, 6].max(axis=1), 1e-3)
    sokolow = np.maximum(rv5 + np.maximum(-leads[:, :, 2].min(axis=1), 0), 1e-3)
    r_avl = np.maximum((i - ii / 2).max(axis=1), 1e-3)
    ceiling = np.minimum.reduce([NORMAL_RV5_MAX_MV / rv5, NORMAL_SOKOLOW_MAX_MV / sokolow, NORMAL_R_AVL_MAX_MV / r_avl])
    normal = np.clip(1.0, NORMAL_LIMB_MIN_MV / limb_pp, ceiling)
    # High voltage: the smallest scale meeting any one criterion, then a little more; never beyond a real heart.
    high = np.minimum.reduce([HIGH_RV5_MIN_MV / rv5, HIGH_SOKOLOW_MIN_MV / sokolow, HIGH_R_AVL_MIN_MV / r_avl])
    high = np.minimum(high * rng.uniform(1.0, 1.25, len(qrs)), HIGH_LIMB_MAX_MV / limb_pp)
    low = LOW_LIMB_MAX_MV / limb_pp * rng.uniform(0.6, 1.0, len(qrs))
    scale = np.select([voltage > 0, voltage < 0], [np.maximum(high, 1.0), np.minimum(low, 1.0)], normal)
    return scale.astype(np.float32)


def _add_fibrillation(vector: np.ndarray, heart: Heart, fs: int, rng: np.random.Generator) -> None:
    """Fibrillatory waves (AF): three drifting 4-9 Hz oscillations along the atria's axis (largest in V1, II)."""
    af = np.flatnonzero(heart.f_amp > 0)
    if not len(af):
        return
    t = np.arange(vector.shape[2]) / fs
    wave = np.zeros((len(af), len(t)))
    for _ in range(3):
        freq = heart.f_freq[af, None] * rng.uniform(0.85, 1.15, (len(af), 1))
        drift = rng.uniform(0.5, 2.0, (len(af), 1)) * np.sin(2 * np.pi * rng.uniform(0.1, 0.4, (len(af), 1)) * t)
        size = rng.uniform(0.5, 1.0, (len(af), 1))
        wave += size * np.sin(2 * np.pi * freq * t + drift + rng.uniform(0, 6.3, (len(af), 1)))
    vector[af] += (heart.f_amp[af, None] / 2.0 * wave)[:, None, :].astype(np.float32) * F_WAVE_DIR[:, None]
