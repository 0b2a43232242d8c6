"""Clinical measurements of every record from the delineator: rate, RR variability, PR, QRS, QT/QTc, axis."""
from __future__ import annotations

import numpy as np

from ecg.data.dataset import ECGDataset
from ecg.features.delineate import Delineation, delineate
from ecg.features.layout import CLINICAL
from ecg.features.stats import millivolts

CHUNK = 256  # records delineated at once (the median-beat array is records x 24 beats x leads x 1 s)


def frontal_axis(qrs_area: np.ndarray, lead_names: list[str]) -> np.ndarray:
    """Degrees in (-180, 180] of the mean QRS vector in the frontal plane, from the net QRS areas of leads I
    and aVF (aVF = II - I/2 when only I and II are recorded); NaN without those leads."""
    names = list(lead_names)
    if "I" not in names or not ({"aVF", "II"} & set(names)):
        return np.full(len(qrs_area), np.nan)
    lead_i = qrs_area[:, names.index("I")]
    avf = qrs_area[:, names.index("aVF")] if "aVF" in names else qrs_area[:, names.index("II")] - lead_i / 2
    return np.degrees(np.arctan2(avf, lead_i))


def measurements(d: Delineation, lead_names: list[str]) -> np.ndarray:
    """`[N, len(CLINICAL)]` float32 in the units their names say; NaN where the delineator found nothing."""
    ms = 1000.0
    qt = d.t_end - d.qrs_onset
    values = {
        "hr_bpm": 60.0 / d.rr_median,
        "rr_sdnn_ms": d.rr_sdnn * ms,
        "rr_rmssd_ms": d.rr_rmssd * ms,
        "pr_ms": (d.qrs_onset - d.p_onset) * ms,
        "qrs_ms": (d.qrs_offset - d.qrs_onset) * ms,
        "qt_ms": qt * ms,
        "qtc_ms": qt / np.sqrt(d.rr_median) * ms,  # Bazett
        "axis_deg": frontal_axis(d.qrs_area, lead_names),
    }
    return np.stack([values[name] for name in CLINICAL], axis=1).astype(np.float32)


def clinical_features(dataset: ECGDataset) -> np.ndarray:
    """`[N, len(CLINICAL)]` float32 for every record of `dataset`, NaN where a measurement failed."""
    n = len(dataset)
    out = np.empty((n, len(CLINICAL)), dtype=np.float32)
    for start in range(0, n, CHUNK):
        rows = slice(start, min(n, start + CHUNK))
        with np.errstate(all="ignore"):
            out[rows] = measurements(delineate(millivolts(dataset, rows), dataset.fs), dataset.lead_names)
    return out
