"""Each diagnosis shows the property that defines it, measured on generated records by independent code
(`ecg_measure.py`: R-peak detection, median beat, interval and amplitude measurement) - and records without the
label do not. Rates, not single cases: at least 90 % of the records on each side must comply.

Measured on a balanced draw with the recording nuisances off (noise=0) where an interval is read to the
millisecond; the rate and rhythm checks also run at the default noise.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ecg_measure import measure  # noqa: E402

from ecg.synthetic import generate  # noqa: E402

N = 500


def _table(noise: float, seed: int) -> pd.DataFrame:
    data = generate(N, seed, balanced=True, noise=noise)
    rows = []
    for k in range(N):
        m = measure(data.signals[k] / data.units_per_mv, data.lead_names, data.fs)
        rows.append({"hr": m.heart_rate, "cv": m.rr_cv, "qrs": m.qrs_ms, "pr": m.pr_ms, "axis": m.axis_deg,
                     "limb": m.limb_pp_mv, "r_avl": m.r_avl_mv, "rv5": m.rv5_mv, "sokolow": m.sokolow_mv,
                     "t_min": min(m.t_mv[lead] for lead in ("I", "II", "V5", "V6"))})
    table = pd.DataFrame(rows)
    for j, name in enumerate(data.class_names):
        table[name] = data.labels[:, j].astype(bool)
    return table


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return _table(noise=0.0, seed=11)


@pytest.fixture(scope="module")
def noisy() -> pd.DataFrame:
    return _table(noise=1.0, seed=12)


def _rate(values: pd.Series) -> float:
    assert len(values) >= 10, f"only {len(values)} records to judge; generate more"
    return float(values.mean())


def _no(table: pd.DataFrame, *names: str) -> pd.Series:
    return ~table[list(names)].any(axis=1)


ECTOPY = ("premature ventricular contraction", "premature atrial contraction")


@pytest.mark.parametrize("table_name", ["clean", "noisy"])
def test_heart_rate_separates_bradycardia_sinus_rhythm_and_tachycardia(table_name, request):
    t = request.getfixturevalue(table_name)
    t = t[_no(t, *ECTOPY)]  # a premature beat and its pause are not the heart's rate
    assert _rate(t[t["sinus bradycardia"]]["hr"] < 60) >= 0.9
    assert _rate(t[t["sinus tachycardia"]]["hr"] > 100) >= 0.9
    assert _rate(t[t["sinus rhythm"]]["hr"].between(60, 100)) >= 0.9


@pytest.mark.parametrize("table_name", ["clean", "noisy"])
def test_rr_irregularity_marks_atrial_fibrillation(table_name, request):
    t = request.getfixturevalue(table_name)
    t = t[_no(t, *ECTOPY)]
    assert _rate(t[t["atrial fibrillation"]]["cv"] > 0.1) >= 0.9
    sinus = t[t["sinus rhythm"] | t["sinus bradycardia"] | t["sinus tachycardia"]]
    assert _rate(sinus["cv"] < 0.1) >= 0.9
    # Sinus arrhythmia: clearly more variable than a steady sinus rhythm, far less than fibrillation.
    assert _rate(sinus[sinus["sinus arrhythmia"]]["cv"] > 0.035) >= 0.9
    assert _rate(sinus[~sinus["sinus arrhythmia"]]["cv"] < 0.035) >= 0.9


def test_pr_interval_marks_first_degree_block_and_short_pr(clean):
    # P waves exist in sinus rhythms; at sinus rates above 100/min the P wave rides on the previous T wave.
    t = clean[(clean["sinus rhythm"] | clean["sinus bradycardia"]) & _no(clean, *ECTOPY)]
    assert _rate(t[t["first-degree AV block"]]["pr"] > 200) >= 0.9
    assert _rate(t[t["short PR interval"]]["pr"] < 120) >= 0.9
    normal = t[_no(t, "first-degree AV block", "short PR interval")]
    assert _rate(normal["pr"].between(120, 200)) >= 0.9


def test_qrs_width_marks_bundle_branch_blocks(clean):
    # Widths are read where the QRS meets an isoelectric baseline: not in fibrillation (no baseline) or pacing.
    t = clean[_no(clean, "atrial fibrillation", "paced rhythm")]
    assert _rate(t[t["complete right bundle branch block"]]["qrs"] >= 120) >= 0.9
    assert _rate(t[t["complete left bundle branch block"]]["qrs"] >= 120) >= 0.9
    assert _rate(t[t["incomplete right bundle branch block"]]["qrs"].between(100, 120)) >= 0.9
    blocks = ("complete right bundle branch block", "complete left bundle branch block",
              "incomplete right bundle branch block")
    assert _rate(t[_no(t, *blocks)]["qrs"] < 100) >= 0.9


def test_frontal_axis_marks_axis_deviation(clean):
    t = clean[_no(clean, "paced rhythm")]
    assert _rate(t[t["left axis deviation"]]["axis"] < -30) >= 0.9
    assert _rate(t[t["right axis deviation"]]["axis"] > 90) >= 0.9
    assert _rate(t[_no(t, "left axis deviation", "right axis deviation")]["axis"].between(-30, 90)) >= 0.9


def test_qrs_amplitude_marks_low_and_high_voltage(clean):
    t = clean
    assert _rate(t[t["low QRS voltage"]]["limb"] < 0.5) >= 0.9
    assert _rate(t[~t["low QRS voltage"]]["limb"] >= 0.5) >= 0.9
    # Voltage criteria of left ventricular hypertrophy: RV5 > 2.5 mV, Sokolow-Lyon SV1 + RV5 > 3.5 mV, R aVL > 1.1 mV.
    high = (t["rv5"] > 2.5) | (t["sokolow"] > 3.5) | (t["r_avl"] > 1.1)
    assert _rate(high[t["left ventricular high voltage"]]) >= 0.9
    assert _rate(~high[~t["left ventricular high voltage"]]) >= 0.9


def test_t_polarity_marks_t_wave_change(clean):
    # Leads where T is normally upright: I, II, V5, V6. Excluded: secondary T changes of a left bundle branch
    # block or pacing, and low voltage (every wave small, so a small T says nothing).
    t = clean[_no(clean, "complete left bundle branch block", "paced rhythm", "low QRS voltage")]
    assert _rate(t[t["T-wave change"]]["t_min"] < 0.05) >= 0.9
    assert _rate(t[~t["T-wave change"]]["t_min"] >= 0.05) >= 0.9
