"""Which numbers a model's per-record input vector holds, in which columns: the one place that knows.

A split hands every model one `extra[N, E]` array (`ECGDataset.extra_inputs()`): the four age/sex columns,
then, when features are attached, the per-lead statistics, the clinical measurements and one missing-value
indicator per measurement. A model's options (`use_age_sex`, `features`) pick the columns its head joins.
"""
from __future__ import annotations

from collections.abc import Sequence

from ecg.data.dataset import AGE_SEX_DIM

FEATURE_SETS: tuple[str, ...] = ("none", "stats", "clinical", "both")

# Per lead, in mV: spread, robust range, shape of the amplitude distribution, how fast it moves, and the log
# power in three bands (baseline and P/T waves, QRS, high-frequency content and noise).
BANDS_HZ: tuple[tuple[float, float], ...] = ((0.5, 4.0), (4.0, 15.0), (15.0, 40.0))
LEAD_STATS: tuple[str, ...] = ("std", "range", "skew", "kurtosis", "diff_std",
                               *(f"logpow_{lo:g}_{hi:g}hz" for lo, hi in BANDS_HZ))
CLINICAL: tuple[str, ...] = ("hr_bpm", "rr_sdnn_ms", "rr_rmssd_ms", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms",
                             "axis_deg")
AGE_SEX_NAMES: tuple[str, ...] = ("age", "age_missing", "sex", "sex_missing")


def stats_names(lead_names: Sequence[str]) -> list[str]:
    """`<lead>_<stat>` for every lead, lead-major."""
    return [f"{lead}_{stat}" for lead in lead_names for stat in LEAD_STATS]


def input_names(lead_names: Sequence[str]) -> list[str]:
    """Every column of the model input once features are attached (age/sex first)."""
    return [*AGE_SEX_NAMES, *stats_names(lead_names), *CLINICAL, *(f"{name}_missing" for name in CLINICAL)]


def feature_width(n_leads: int) -> int:
    """Feature columns after age/sex: statistics of every lead, measurements and their indicators."""
    return n_leads * len(LEAD_STATS) + 2 * len(CLINICAL)


def input_width(n_leads: int) -> int:
    """Width of the whole per-record input with features attached."""
    return AGE_SEX_DIM + feature_width(n_leads)


def check_feature_set(features: str) -> str:
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}; got {features!r}")
    return features


def extra_columns(use_age_sex: bool, features: str, n_leads: int) -> list[int]:
    """Columns of the per-record input a head with these options joins (empty: it joins none)."""
    check_feature_set(features)
    columns = list(range(AGE_SEX_DIM)) if use_age_sex else []
    stats_start = AGE_SEX_DIM
    clinical_start = stats_start + n_leads * len(LEAD_STATS)
    if features in ("stats", "both"):
        columns += range(stats_start, clinical_start)
    if features in ("clinical", "both"):
        columns += range(clinical_start, clinical_start + 2 * len(CLINICAL))
    return columns
