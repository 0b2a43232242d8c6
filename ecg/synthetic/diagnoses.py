"""The diagnoses: each one a change to the heart's parameters by the mechanism that defines it.

`DIAGNOSES` is the registry, in the order the effects are applied (rhythm, then conduction, orientation,
voltage, repolarisation, ectopy). Each entry carries its name in the Hefei round-2 class list and its count in
the round-2 label file (20,036 records), from which the default class frequencies come. Rhythm diagnoses are
mutually exclusive (exactly one per record); the others combine subject to `excludes` (physiologically
incompatible pairs) and `requires`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ecg.synthetic.dipole import direction
from ecg.synthetic.heart import Heart

Effect = Callable[[Heart, np.ndarray, np.random.Generator], None]

ROUND2_RECORDS = 20036
MIN_PREVALENCE = 0.003  # the rarest classes still get a few records in a set of a thousand (real: 3 in 20,036)
BALANCED_PREVALENCE = 0.2
MAX_LABELS = 6


@dataclass(frozen=True)
class Diagnosis:
    name: str
    hefei_name: str  # the class in the round-2 list (hf_round2_arrythmia.txt) it stands for
    round2_count: int
    effect: Effect
    rhythm: bool = False  # one of the mutually exclusive rhythms
    excludes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # at least one of these must be present
    implies: tuple[str, ...] = ()  # labels this one brings with it (a cardiologist would write both)
    age_shift: float = 0.0  # years added to the patient's age (AF, blocks and pacing come with age)
    male_shift: float = 0.0  # added to the probability of a male patient


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


# --- rhythm --------------------------------------------------------------------------------------------------


def _sinus(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Normal sinus rhythm: the healthy heart as drawn (62-98/min)."""


def _bradycardia(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.hr[i] = rng.uniform(42, 57, len(i))


def _tachycardia(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.hr[i] = np.minimum(103 + rng.exponential(12, len(i)), 150)


def _atrial_fibrillation(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """No organised atrial activity: no P waves, a fibrillatory baseline, irregularly irregular conduction."""
    h.p_present[i] = False
    h.rr_cv[i] = rng.uniform(0.16, 0.3, len(i))
    h.rr_jitter[i] = 0.0
    h.resp_amp[i] = 0.0
    h.hr[i] = rng.uniform(62, 98, len(i))
    h.f_amp[i] = rng.uniform(0.04, 0.12, len(i))


def _rapid_ventricular_rate(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.hr[i] = rng.uniform(106, 150, len(i))


def _paced(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Right-ventricular (outflow tract) pacing: a spike, then a wide left-bundle-like QRS with discordant T."""
    n = len(i)
    h.paced[i] = True
    h.p_present[i] = False
    h.hr[i] = rng.uniform(60, 80, n)
    h.rr_jitter[i] = 0.0
    h.resp_amp[i] = 0.0
    h.spike_vec[i] = direction(rng.uniform(-90, 180, n), rng.uniform(-60, 60, n)) * rng.uniform(0.8, 2.5, (n, 1))
    _left_bundle_loop(h, i, rng, rng.uniform(0.14, 0.18, n))
    h.axis[i] = rng.uniform(60, 85, n)


def _sinus_arrhythmia(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Respiratory modulation of the sinus rate, 7-12 % of RR either way."""
    h.resp_amp[i] = rng.uniform(0.07, 0.12, len(i))
    h.resp_period[i] = rng.uniform(3.0, 6.0, len(i))


# --- atrioventricular conduction and atria -------------------------------------------------------------------


def _first_degree_block(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.pr[i] = rng.uniform(0.22, 0.30, len(i))


def _short_pr(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.pr[i] = rng.uniform(0.08, 0.11, len(i))
    h.p_dur[i] = np.minimum(h.p_dur[i], h.pr[i] - 0.015)


def _right_atrial_enlargement(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """P pulmonale: a tall (>= 0.25 mV in II), vertical P wave."""
    n = len(i)
    h.p_vec[i] = direction(rng.uniform(70, 85, n), rng.uniform(10, 40, n)) * rng.uniform(0.3, 0.42, (n, 1))


# --- intraventricular conduction -----------------------------------------------------------------------------

_RIGHT_DELAYED = _unit(-0.55, 0.05, 0.83)


def _right_bundle(h: Heart, i: np.ndarray, rng: np.random.Generator, duration: np.ndarray, size: tuple) -> None:
    """Late, slow right-ventricular activation: terminal rightward-anterior forces (R' in V1, wide S in I, V6)."""
    n = len(i)
    h.qrs_dur[i] = duration
    h.qrs_center[i, 1], h.qrs_half[i, 1] = 0.34, 0.26
    h.qrs_vec[i, 2] *= 0.4
    h.qrs_vec[i, 3] = _RIGHT_DELAYED * rng.uniform(*size, (n, 1))
    h.qrs_center[i, 3], h.qrs_half[i, 3] = 0.76, 0.24
    h.t_vec[i] -= 0.15 * _RIGHT_DELAYED  # secondary T: inverted in V1-V2


def _complete_rbbb(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    _right_bundle(h, i, rng, rng.uniform(0.125, 0.155, len(i)), (0.45, 0.7))


def _incomplete_rbbb(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    _right_bundle(h, i, rng, rng.uniform(0.102, 0.112, len(i)), (0.25, 0.4))


def _left_bundle_loop(h: Heart, i: np.ndarray, rng: np.random.Generator, duration: np.ndarray) -> None:
    """Septum activated from the right, left ventricle late and slowly: broad notched R in I, V6, QS in V1."""
    n = len(i)
    h.qrs_dur[i] = duration
    h.qrs_vec[i, 0] = _unit(0.6, 0.1, -0.3) * rng.uniform(0.08, 0.15, (n, 1))
    h.qrs_center[i, 0], h.qrs_half[i, 0] = 0.15, 0.15
    h.qrs_center[i, 1], h.qrs_half[i, 1] = 0.36, 0.3
    h.qrs_vec[i, 4] = direction(np.full(n, 40.0), np.full(n, -45.0)) * rng.uniform(0.7, 1.0, (n, 1))
    h.qrs_center[i, 4], h.qrs_half[i, 4] = 0.68, 0.3
    h.qrs_vec[i, 2] = 0.0
    h.horizontal[i] = rng.uniform(-60, -45, n)
    h.t_secondary[i] = rng.uniform(0.7, 1.0, n)


def _complete_lbbb(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    _left_bundle_loop(h, i, rng, rng.uniform(0.135, 0.17, len(i)))


def _left_anterior_fascicular_block(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Left ventricle activated from the posterior fascicle: initial forces inferior (r in II, q in aVL), main
    forces superior-left (axis -45 to -75 deg), QRS barely widened."""
    n = len(i)
    h.axis[i] = rng.uniform(-75, -45, n)
    # Written in the reference frame; the ~-110 deg axis rotation turns it inferior-rightward.
    h.qrs_vec[i, 0] = _unit(-0.65, -0.56, 0.3) * rng.uniform(0.2, 0.3, (n, 1))
    h.qrs_dur[i] = np.maximum(h.qrs_dur[i], rng.uniform(0.08, 0.092, n))


def _inferior_q(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Inferior scar: initial forces point away from the inferior wall, a broad Q in II, III and aVF."""
    n = len(i)
    h.qrs_vec[i, 0] = _unit(0.25, -0.95, 0.15) * rng.uniform(0.35, 0.5, (n, 1))
    h.qrs_center[i, 0], h.qrs_half[i, 0] = 0.22, 0.22


# --- orientation and voltage ---------------------------------------------------------------------------------


def _left_axis(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.axis[i] = rng.uniform(-80, -42, len(i))


def _right_axis(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.axis[i] = rng.uniform(106, 150, len(i))


def _clockwise(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Rotation about the long axis seen from below, clockwise: the transition moves to V5-V6."""
    h.horizontal[i] = rng.uniform(-72, -52, len(i))


def _counterclockwise(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Counter-clockwise rotation: an early transition, R >= S already in V2."""
    h.horizontal[i] = rng.uniform(15, 32, len(i))


def _low_voltage(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.voltage[i] = -1


def _high_voltage(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.voltage[i] = 1


# --- repolarisation ------------------------------------------------------------------------------------------


def _t_wave_change(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """Primary T change: the T vector reversed (inverted T in I, II, V5-V6) or nearly abolished (flat T)."""
    n = len(i)
    inverted = rng.random(n) < 0.6
    factor = np.where(inverted, -rng.uniform(0.4, 1.0, n), rng.uniform(-0.12, 0.12, n))
    h.t_vec[i] *= factor[:, None]


def _st_change(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """ST shift: depression facing the lateral wall (subendocardial) or anterior elevation."""
    n = len(i)
    elevated = rng.random(n) < 0.3
    up = _unit(0.1, 0.1, 1.0) * rng.uniform(0.12, 0.25, (n, 1))
    down = -_unit(0.8, 0.5, 0.3) * rng.uniform(0.1, 0.22, (n, 1))
    h.st_vec[i] = np.where(elevated[:, None], up, down)


def _early_repolarisation(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    """J-point notch with concave ST elevation over the inferolateral leads, tall T (young, male)."""
    n = len(i)
    toward = _unit(0.6, 0.6, 0.5)
    h.j_vec[i] = toward * rng.uniform(0.1, 0.2, (n, 1))
    h.st_vec[i] = toward * rng.uniform(0.06, 0.12, (n, 1))
    h.t_vec[i] *= 1.2


# --- ectopy --------------------------------------------------------------------------------------------------


def _count(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1])


def _pvc(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.n_pvc[i] = _count(rng, len(i))


def _pac(h: Heart, i: np.ndarray, rng: np.random.Generator) -> None:
    h.n_pac[i] = _count(rng, len(i))


SR, BRADY, TACHY, AF, PACED = ("sinus rhythm", "sinus bradycardia", "sinus tachycardia", "atrial fibrillation",
                               "paced rhythm")
SINUS = (SR, BRADY, TACHY)
CRBBB, IRBBB, LBBB = ("complete right bundle branch block", "incomplete right bundle branch block",
                      "complete left bundle branch block")
LAD, RAD, LAFB = "left axis deviation", "right axis deviation", "left anterior fascicular block"
AVB1, SHORT_PR = "first-degree AV block", "short PR interval"
TWC, STC, ER = "T-wave change", "ST change", "early repolarisation"
INFERIOR_Q, CLOCKWISE, LOW_VOLTAGE = "inferior abnormal Q wave", "clockwise rotation", "low QRS voltage"

DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(SR, "窦性心律", 9501, _sinus, rhythm=True),
    Diagnosis(BRADY, "窦性心动过缓", 5264, _bradycardia, rhythm=True),
    Diagnosis(TACHY, "窦性心动过速", 4895, _tachycardia, rhythm=True, age_shift=-6),
    Diagnosis(AF, "心房颤动", 120, _atrial_fibrillation, rhythm=True, age_shift=25),
    Diagnosis(PACED, "起搏心律", 16, _paced, rhythm=True, age_shift=28),
    Diagnosis("sinus arrhythmia", "窦性心律不齐", 901, _sinus_arrhythmia, requires=SINUS, age_shift=-10),
    Diagnosis("rapid ventricular rate", "快心室率", 29, _rapid_ventricular_rate, requires=(AF,)),
    Diagnosis(AVB1, "一度房室传导阻滞", 142, _first_degree_block, excludes=(AF, PACED, TACHY, SHORT_PR),
              age_shift=12),
    Diagnosis(SHORT_PR, "短PR间期", 23, _short_pr, excludes=(AF, PACED)),
    Diagnosis("right atrial enlargement", "右心房扩大", 32, _right_atrial_enlargement, excludes=(AF, PACED)),
    Diagnosis(CRBBB, "完全性右束支传导阻滞", 418, _complete_rbbb, excludes=(PACED, IRBBB, LBBB), age_shift=8),
    Diagnosis(IRBBB, "不完全性右束支传导阻滞", 126, _incomplete_rbbb, excludes=(PACED, LBBB)),
    Diagnosis(LBBB, "完全性左束支传导阻滞", 25, _complete_lbbb, excludes=(PACED, LAFB, INFERIOR_Q),
              age_shift=18),
    Diagnosis(LAD, "电轴左偏", 1124, _left_axis, excludes=(PACED, RAD), age_shift=6),
    Diagnosis(RAD, "电轴右偏", 1124, _right_axis, excludes=(PACED,), age_shift=-10),
    Diagnosis(LAFB, "左前分支传导阻滞", 35, _left_anterior_fascicular_block, excludes=(PACED, RAD),
              implies=(LAD,), age_shift=10),
    Diagnosis(INFERIOR_Q, "下壁异常Q波", 52, _inferior_q, excludes=(PACED,), age_shift=12,
              male_shift=0.2),
    Diagnosis(CLOCKWISE, "顺钟向转位", 35, _clockwise, excludes=(PACED, LBBB)),
    Diagnosis("counterclockwise rotation", "逆钟向转位", 60, _counterclockwise, excludes=(PACED, LBBB, CLOCKWISE)),
    Diagnosis(LOW_VOLTAGE, "QRS低电压", 3, _low_voltage, excludes=(PACED,), age_shift=10),
    Diagnosis("left ventricular high voltage", "左心室高电压", 414, _high_voltage,
              excludes=(LOW_VOLTAGE, RAD, CLOCKWISE, PACED, LBBB), male_shift=0.25),
    Diagnosis(TWC, "T波改变", 3479, _t_wave_change, excludes=(PACED, LBBB), age_shift=8),
    Diagnosis(STC, "ST段改变", 286, _st_change, excludes=(PACED, LBBB), age_shift=10),
    Diagnosis(ER, "早期复极化", 22, _early_repolarisation, excludes=(PACED, LBBB, STC, TWC), age_shift=-15,
              male_shift=0.4),
    Diagnosis("premature ventricular contraction", "室性早搏", 543, _pvc, age_shift=8),
    Diagnosis("premature atrial contraction", "房性早搏", 314, _pac, excludes=(AF, PACED), age_shift=8),
)

SYNTHETIC_CLASSES: tuple[str, ...] = tuple(d.name for d in DIAGNOSES)
RHYTHM_CLASSES: tuple[str, ...] = tuple(d.name for d in DIAGNOSES if d.rhythm)
# What a diagnosis is about, for figures per group (bench/bench_features.py): the rate and regularity of the
# beats (ectopic beats included), how the impulse is conducted, and the shape of the waves.
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "rhythm": (*RHYTHM_CLASSES, "sinus arrhythmia", "rapid ventricular rate", "premature ventricular contraction",
               "premature atrial contraction"),
    "conduction": (AVB1, SHORT_PR, CRBBB, IRBBB, LBBB, LAFB),
    "morphology": ("right atrial enlargement", LAD, RAD, INFERIOR_Q, CLOCKWISE, "counterclockwise rotation",
                   LOW_VOLTAGE, "left ventricular high voltage", TWC, STC, ER),
}
_INDEX = {name: k for k, name in enumerate(SYNTHETIC_CLASSES)}


def _conflicts() -> np.ndarray:
    """`[C, C]` bool: pairs that may not co-occur (excludes made symmetric; rhythms exclude each other)."""
    c = len(DIAGNOSES)
    table = np.zeros((c, c), dtype=bool)
    for k, d in enumerate(DIAGNOSES):
        for other in d.excludes:
            table[k, _INDEX[other]] = table[_INDEX[other], k] = True
    rhythm = np.array([d.rhythm for d in DIAGNOSES])
    table |= rhythm[:, None] & rhythm[None, :]
    np.fill_diagonal(table, False)
    return table


CONFLICTS = _conflicts()


def prevalence(balanced: bool) -> np.ndarray:
    """`[C]` wanted fraction of records with each label (rhythms sum to one)."""
    counts = np.array([d.round2_count for d in DIAGNOSES], dtype=np.float64)
    rhythm = np.array([d.rhythm for d in DIAGNOSES])
    if balanced:
        p = np.full(len(DIAGNOSES), BALANCED_PREVALENCE)
        p[rhythm] = 1.0 / rhythm.sum()
        return p
    p = np.maximum(counts / ROUND2_RECORDS, MIN_PREVALENCE)
    p[rhythm] = np.maximum(counts[rhythm] / counts[rhythm].sum(), MIN_PREVALENCE)
    p[rhythm] /= p[rhythm].sum()
    return p


def sample_labels(n: int, balanced: bool, rng: np.random.Generator) -> np.ndarray:
    """`[n, C]` uint8 multi-hot labels: one rhythm, other diagnoses drawn independently at their prevalence,
    incompatible ones dropped (the rarer diagnosis wins), implied ones added, at most six per record."""
    p = prevalence(balanced)
    rhythm_idx = np.array([k for k, d in enumerate(DIAGNOSES) if d.rhythm])
    labels = np.zeros((n, len(DIAGNOSES)), dtype=bool)
    pick = rng.choice(len(rhythm_idx), size=n, p=p[rhythm_idx] / p[rhythm_idx].sum())
    labels[np.arange(n), rhythm_idx[pick]] = True
    others = [k for k, d in enumerate(DIAGNOSES) if not d.rhythm]
    draws = rng.random((n, len(DIAGNOSES)))
    for k in sorted(others, key=lambda k: p[k]):
        d = DIAGNOSES[k]
        chance = np.full(n, p[k])
        if d.requires:
            have = labels[:, [_INDEX[r] for r in d.requires]].any(axis=1)
            chance = np.where(have, min(0.5 if balanced else 0.9, p[k] / p[[_INDEX[r] for r in d.requires]].sum()), 0)
        add = (draws[:, k] < chance) & ~(labels & CONFLICTS[k]).any(axis=1)
        for implied in d.implies:
            add &= ~(labels & CONFLICTS[_INDEX[implied]]).any(axis=1)
        labels[add, k] = True
        for implied in d.implies:
            labels[add, _INDEX[implied]] = True
    _cap(labels, rng)
    return labels.astype(np.uint8)


def _cap(labels: np.ndarray, rng: np.random.Generator) -> None:
    """Drop random labels from records with more than MAX_LABELS, never a rhythm or a label another implies."""
    rhythm = np.array([d.rhythm for d in DIAGNOSES])
    while True:
        over = labels.sum(axis=1) > MAX_LABELS
        if not over.any():
            return
        protected = np.zeros_like(labels[over])
        for k, d in enumerate(DIAGNOSES):
            for implied in d.implies:
                protected[:, _INDEX[implied]] |= labels[over, k]
        droppable = labels[over] & ~rhythm & ~protected
        keys = np.where(droppable, rng.random(droppable.shape), -1.0)
        rows = np.flatnonzero(over)
        labels[rows, keys.argmax(axis=1)] = False


def apply(heart: Heart, labels: np.ndarray, rng: np.random.Generator) -> None:
    """Change `heart` (in place) by every diagnosis each record carries, in registry order."""
    for k, d in enumerate(DIAGNOSES):
        index = np.flatnonzero(labels[:, k])
        if len(index):
            d.effect(heart, index, rng)


def demographics(labels: np.ndarray, rng: np.random.Generator, missing: float = 0.075) -> tuple[np.ndarray, np.ndarray]:
    """`(age, sex)` float32 with NaN for missing (about `missing` of each, as in round 2): age around 43 years
    (sd 17) shifted by the diagnoses, sex male with probability 0.44 plus the diagnoses' shifts."""
    n = len(labels)
    shift = labels.astype(np.float64) @ np.array([d.age_shift for d in DIAGNOSES])
    age = np.clip(rng.normal(43, 17, n) + shift, 2, 98).round()
    male = np.clip(0.44 + labels.astype(np.float64) @ np.array([d.male_shift for d in DIAGNOSES]), 0.05, 0.95)
    sex = (rng.random(n) < male).astype(np.float64)
    age[rng.random(n) < missing] = np.nan
    sex[rng.random(n) < missing] = np.nan
    return age.astype(np.float32), sex.astype(np.float32)
