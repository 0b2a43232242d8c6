"""The heart vector (dipole) model: waves as time courses of a 3-D cardiac vector, leads as projections.

Coordinates follow the body: x points to the patient's left, y to the feet (inferior), z to the chest
(anterior). A frontal-plane angle is measured from +x (lead I, 0 deg) towards +y (aVF, +90 deg), the clinical
convention, so an electrical axis here is the axis a cardiologist reads off leads I and aVF.

Each record's beat is a *template*: the vector sum of a few wave components (P, four QRS components, J wave,
ST plateau, T, pacing spike), each a fixed 3-D vector times a compactly supported bump in time. The recorded
leads I, II and V1-V6 are projections of that vector on each lead's direction; III, aVR, aVL and aVF are
derived from I and II by Einthoven's and Goldberger's equations, exactly as a 12-lead machine does.
"""
from __future__ import annotations

import numpy as np

# The eight independently recorded leads, in the Hefei order. Everything else derives from I and II.
RECORDED_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

# Frontal leads: angle in the frontal plane (deg). Precordial: angle in the horizontal plane from +x towards +z
# (anterior), and a gain (the chest electrodes sit closer to the heart, V2-V4 closest).
LIMB_ANGLES = {"I": 0.0, "II": 60.0}
PRECORDIAL = {  # name: (horizontal angle deg, gain)
    "V1": (120.0, 1.3),
    "V2": (95.0, 1.8),
    "V3": (75.0, 1.8),
    "V4": (55.0, 1.7),
    "V5": (30.0, 1.5),
    "V6": (5.0, 1.2),
}

# Every output lead as a combination of the recorded ones (rows: output lead, columns: RECORDED_LEADS).
_DERIVED = {
    "III": {"II": 1.0, "I": -1.0},
    "aVR": {"I": -0.5, "II": -0.5},
    "aVL": {"I": 1.0, "II": -0.5},
    "aVF": {"II": 1.0, "I": -0.5},
}


def lead_combination(leads: tuple[str, ...] | list[str]) -> np.ndarray:
    """`[len(leads), 8]` matrix turning the recorded leads (I, II, V1-V6) into `leads` (any of the 12)."""
    matrix = np.zeros((len(leads), len(RECORDED_LEADS)), dtype=np.float32)
    for row, name in enumerate(leads):
        if name in RECORDED_LEADS:
            matrix[row, RECORDED_LEADS.index(name)] = 1.0
        elif name in _DERIVED:
            for source, weight in _DERIVED[name].items():
                matrix[row, RECORDED_LEADS.index(source)] = weight
        else:
            known = ", ".join([*RECORDED_LEADS[:2], *_DERIVED, *RECORDED_LEADS[2:]])
            raise ValueError(f"unknown lead {name!r}; the generator knows {known}")
    return matrix


def lead_vectors(n: int, rng: np.random.Generator, jitter_deg: float) -> np.ndarray:
    """`[n, 3, 8]` lead directions (times gain) of the recorded leads, with chest electrodes placed per record
    up to `jitter_deg` off their textbook position (placement and torso shape vary between people)."""
    out = np.zeros((n, 3, len(RECORDED_LEADS)), dtype=np.float32)
    for col, name in enumerate(RECORDED_LEADS[:2]):
        angle = np.deg2rad(LIMB_ANGLES[name])
        out[:, 0, col] = np.cos(angle)
        out[:, 1, col] = np.sin(angle)
    for col, name in enumerate(RECORDED_LEADS[2:], start=2):
        angle_deg, gain = PRECORDIAL[name]
        angle = np.deg2rad(angle_deg + rng.uniform(-jitter_deg, jitter_deg, n))
        tilt = np.deg2rad(rng.uniform(-jitter_deg, jitter_deg, n) * 0.5)  # electrodes a little high or low
        out[:, 0, col] = gain * np.cos(angle) * np.cos(tilt)
        out[:, 2, col] = gain * np.sin(angle) * np.cos(tilt)
        out[:, 1, col] = gain * np.sin(tilt)
    return out


def direction(frontal_deg: np.ndarray, horizontal_deg: np.ndarray) -> np.ndarray:
    """`[n, 3]` unit vectors with the given frontal-plane angle and horizontal-plane angle (from +x to +z).

    The anterior part is set from the horizontal angle against the vector's left-right extent (at least half),
    so a vertical vector can still lean forward or back.
    """
    a = np.deg2rad(np.asarray(frontal_deg, dtype=np.float64))
    h = np.deg2rad(np.asarray(horizontal_deg, dtype=np.float64))
    x, y = np.cos(a), np.sin(a)
    z = np.tan(h) * np.maximum(np.abs(x), 0.5)
    v = np.stack([x, y, z], axis=-1)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Wave shapes: compact support, so a wave's duration is exactly where it is non-zero.
# ---------------------------------------------------------------------------------------------------------------


def bump(t: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Raised-cosine bump, zero outside [start, end], 1 at the middle. Shapes broadcast ([n, 1] vs [1, W])."""
    half = np.maximum((end - start) * 0.5, 1e-6)
    u = (t - (start + end) * 0.5) / half
    return np.where(np.abs(u) < 1.0, 0.5 + 0.5 * np.cos(np.pi * np.clip(u, -1.0, 1.0)), 0.0)


def skewed_bump(t: np.ndarray, start: np.ndarray, end: np.ndarray, peak: float) -> np.ndarray:
    """Asymmetric bump on [start, end] peaking at fraction `peak`: slow rise, faster fall (the T wave's shape)."""
    width = np.maximum(end - start, 1e-6)
    u = np.clip((t - start) / width, 0.0, 1.0)
    rise = 0.5 - 0.5 * np.cos(np.pi * u / peak)
    fall = 0.5 + 0.5 * np.cos(np.pi * (u - peak) / (1.0 - peak))
    shape = np.where(u < peak, rise**1.6, fall)
    return np.where((t > start) & (t < end), shape, 0.0)


def plateau(t: np.ndarray, start: np.ndarray, end: np.ndarray, taper: float = 0.3) -> np.ndarray:
    """Flat-topped (Tukey) window on [start, end]: 1 in the middle, cosine tapers over `taper` of each side."""
    width = np.maximum(end - start, 1e-6)
    u = (t - start) / width
    edge = np.minimum(u, 1.0 - u) / taper
    shape = np.where(edge >= 1.0, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0.0, 1.0)))
    return np.where((u > 0.0) & (u < 1.0), shape, 0.0)
