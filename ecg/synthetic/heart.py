"""Per-record heart parameters and the beat templates they define.

`Heart` holds, for n records at once, everything that shapes a beat: wave durations, the 3-D vectors of each
wave and the orientation of the QRS loop. A healthy heart is drawn first (`Heart.normal`); each diagnosis then
changes the parameters its mechanism changes (see `diagnoses.py`). `render_templates` turns the parameters
into one beat per beat kind (sinus or paced, ventricular ectopic, atrial ectopic) as a vector time course.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ecg.synthetic.dipole import bump, direction, plateau, skewed_bump

# The QRS loop is written as K components in a reference heart whose main vector points 50 deg in the frontal
# plane and -30 deg (posterior) in the horizontal plane; the loop is then rotated to the record's orientation.
# Components: septal (initial, rightward-anterior), main (left ventricle), terminal (basal, superior-posterior),
# right-delayed (late right-anterior forces of a right bundle branch block), second-left (a left bundle branch
# block's slow, notched left-ventricular activation).
QRS_COMPONENTS = ("septal", "main", "terminal", "right_delayed", "second_left")
K = len(QRS_COMPONENTS)
REFERENCE_AXIS = 50.0
REFERENCE_HORIZONTAL = -30.0

# Beat kinds a template is rendered for.
SINUS, VENTRICULAR_ECTOPIC, ATRIAL_ECTOPIC = 0, 1, 2
N_KINDS = 3

# Template window around QRS onset: long enough for a PR of 320 ms and a QT of 600 ms.
PRE_S = 0.36
POST_S = 0.66


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


SEPTAL_DIR = _unit([-0.5, 0.2, 0.8])
TERMINAL_DIR = _unit([-0.4, -0.5, -0.75])
MAIN_DIR = direction(np.array([REFERENCE_AXIS]), np.array([REFERENCE_HORIZONTAL]))[0]


@dataclass
class Heart:
    """Parameters of n hearts; every field is an array whose first axis is the record. Times in seconds,
    vectors in mV (per unit of the QRS amplitude `qrs_amp` for the QRS components)."""

    # rhythm
    hr: np.ndarray  # mean ventricular rate, beats/min
    rr_jitter: np.ndarray  # beat-to-beat RR variation (fraction), heart-rate variability
    rr_cv: np.ndarray  # atrial fibrillation: independent RR draws with this coefficient of variation (0 = off)
    resp_amp: np.ndarray  # respiratory RR modulation (fraction of RR): sinus arrhythmia when large
    resp_period: np.ndarray
    n_pvc: np.ndarray  # premature ventricular beats wanted in the record
    n_pac: np.ndarray  # premature atrial beats wanted in the record
    # atria
    p_present: np.ndarray  # bool: sinus P waves (False in AF and ventricular pacing)
    pr: np.ndarray  # P onset to QRS onset
    p_dur: np.ndarray
    p_vec: np.ndarray  # [n, 3]
    f_amp: np.ndarray  # fibrillatory wave amplitude (AF), mV
    f_freq: np.ndarray  # Hz
    # ventricles
    qrs_dur: np.ndarray
    qrs_amp: np.ndarray  # mV, scales the whole QRS loop
    qrs_vec: np.ndarray  # [n, K, 3] in the reference orientation
    qrs_center: np.ndarray  # [n, K] fraction of QRS duration
    qrs_half: np.ndarray  # [n, K] half-width, fraction of QRS duration
    axis: np.ndarray  # frontal-plane angle of the mean QRS vector (the electrical axis), deg
    horizontal: np.ndarray  # horizontal-plane angle of the main QRS vector, deg (precordial transition)
    voltage: np.ndarray  # -1 low QRS voltage, 0 normal, +1 left-ventricular high voltage
    # repolarisation
    qtc: np.ndarray  # Bazett-corrected QT
    t_vec: np.ndarray  # [n, 3]
    t_secondary: np.ndarray  # weight of T discordant to the QRS (bundle branch block, pacing)
    st_vec: np.ndarray  # [n, 3] ST-segment shift
    j_vec: np.ndarray  # [n, 3] J wave (early repolarisation)
    # pacing
    paced: np.ndarray  # bool
    spike_vec: np.ndarray  # [n, 3]

    @classmethod
    def normal(cls, n: int, rng: np.random.Generator) -> "Heart":
        """n healthy hearts in sinus rhythm at 62-98/min with normal intervals, axis and voltage."""
        u = rng.uniform
        qrs_vec = np.zeros((n, K, 3), dtype=np.float32)
        qrs_vec[:, 0] = SEPTAL_DIR * u(0.12, 0.24, (n, 1))
        qrs_vec[:, 1] = MAIN_DIR
        qrs_vec[:, 2] = TERMINAL_DIR * u(0.15, 0.3, (n, 1))
        centers = np.tile(np.array([0.17, 0.5, 0.82, 0.75, 0.68], dtype=np.float32), (n, 1))
        halves = np.tile(np.array([0.17, 0.3, 0.18, 0.25, 0.3], dtype=np.float32), (n, 1))
        return cls(
            hr=u(62, 98, n),
            rr_jitter=u(0.005, 0.012, n),
            rr_cv=np.zeros(n),
            resp_amp=u(0.0, 0.012, n),
            resp_period=u(3.0, 6.0, n),
            n_pvc=np.zeros(n, dtype=np.int64),
            n_pac=np.zeros(n, dtype=np.int64),
            p_present=np.ones(n, dtype=bool),
            pr=u(0.13, 0.19, n),
            p_dur=u(0.08, 0.11, n),
            p_vec=direction(u(40, 70, n), u(0, 30, n)) * u(0.1, 0.2, (n, 1)),
            f_amp=np.zeros(n),
            f_freq=u(4.5, 8.5, n),
            qrs_dur=u(0.07, 0.094, n),
            qrs_amp=u(0.9, 1.7, n),
            qrs_vec=qrs_vec,
            qrs_center=centers,
            qrs_half=halves,
            axis=u(10, 75, n),
            horizontal=u(-25, -8, n),
            voltage=np.zeros(n, dtype=np.int64),
            qtc=u(0.38, 0.44, n),
            t_vec=direction(u(25, 60, n), u(10, 45, n)) * u(0.3, 0.6, (n, 1)),
            t_secondary=np.zeros(n),
            st_vec=np.zeros((n, 3), dtype=np.float32),
            j_vec=np.zeros((n, 3), dtype=np.float32),
            paced=np.zeros(n, dtype=bool),
            spike_vec=np.zeros((n, 3), dtype=np.float32),
        )

    def __len__(self) -> int:
        return len(self.hr)

    def subset(self, index: np.ndarray) -> "Heart":
        return Heart(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def rr(self) -> np.ndarray:
        return 60.0 / self.hr

    @property
    def qt(self) -> np.ndarray:
        """QT from the Bazett-corrected QTc at the mean RR, lengthened by a widened QRS."""
        return np.clip(self.qtc * np.sqrt(self.rr) + np.maximum(self.qrs_dur - 0.09, 0.0), 0.26, POST_S - 0.04)


def rotation(heart: Heart) -> np.ndarray:
    """`[n, 3, 3]` rotations taking the reference QRS loop to each record's orientation: first about the vertical
    axis (precordial transition), then about the sagittal axis so the mean QRS vector's frontal angle is `axis`."""
    n = len(heart)
    d = np.deg2rad(heart.horizontal - REFERENCE_HORIZONTAL)
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = np.cos(d), -np.sin(d), 1, np.sin(d), np.cos(d)
    # The electrical axis is the frontal angle of the mean QRS vector (each component's area: vector x width).
    mean = np.einsum("nij,nkj,nk->ni", ry, heart.qrs_vec.astype(np.float64), heart.qrs_half)
    g = np.deg2rad(heart.axis) - np.arctan2(mean[:, 1], mean[:, 0])
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = np.cos(g), -np.sin(g), np.sin(g), np.cos(g), 1
    return (rz @ ry).astype(np.float32)


def _time_grid(fs: int) -> tuple[np.ndarray, int]:
    pre = int(round(PRE_S * fs))
    width = pre + int(round(POST_S * fs))
    return ((np.arange(width) - pre) / fs)[None, :], pre


def render_qrs(heart: Heart, fs: int, vectors: np.ndarray | None = None) -> np.ndarray:
    """`[n, W, 3]` QRS complex (onset at the template's zero) from the rotated, amplitude-scaled loop."""
    t, _ = _time_grid(fs)
    if vectors is None:
        vectors = oriented_qrs(heart)
    out = np.zeros((len(heart), t.shape[1], 3), dtype=np.float32)
    dur = heart.qrs_dur[:, None]
    for k in range(K):
        centre = heart.qrs_center[:, k : k + 1] * dur
        half = heart.qrs_half[:, k : k + 1] * dur
        shape = bump(t, centre - half, centre + half).astype(np.float32)
        out += shape[:, :, None] * vectors[:, None, k, :]
    return out


def oriented_qrs(heart: Heart) -> np.ndarray:
    """`[n, K, 3]` QRS component vectors in each record's orientation, in mV."""
    return np.einsum("nij,nkj->nki", rotation(heart), heart.qrs_vec) * heart.qrs_amp[:, None, None]


def render_templates(heart: Heart, fs: int, qrs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """`([n, N_KINDS, W, 3], pre)`: one beat per kind as a vector time course; sample `pre` is QRS onset.

    `qrs` is the sinus QRS from `render_qrs` (already voltage-calibrated). Ectopic beats are drawn here: a
    ventricular one has no P wave and a wide QRS of its own (one focus per record) with a discordant T; an
    atrial one has an ectopic P wave (other axis and PR) and conducts normally.
    """
    n = len(heart)
    t, pre = _time_grid(fs)
    templates = np.zeros((n, N_KINDS, t.shape[1], 3), dtype=np.float32)
    qt = heart.qt[:, None]
    j_point = heart.qrs_dur[:, None]

    # Repolarisation: primary T (the heart's own) blended with a secondary T opposite to the mean QRS vector.
    mean_qrs = qrs.sum(axis=1)
    mean_qrs /= np.linalg.norm(mean_qrs, axis=1, keepdims=True) + 1e-9
    t_size = np.linalg.norm(heart.t_vec, axis=1, keepdims=True)
    w = heart.t_secondary[:, None]
    t_vec = (1 - w) * heart.t_vec - w * mean_qrs * np.maximum(t_size, 0.3) * 1.1
    t_shape = skewed_bump(t, j_point, qt, 0.62).astype(np.float32)
    st_shape = plateau(t, j_point, j_point + 0.62 * (qt - j_point)).astype(np.float32)
    j_shape = bump(t, j_point - 0.025, j_point + 0.008).astype(np.float32)
    repol = t_shape[:, :, None] * t_vec[:, None, :] + st_shape[:, :, None] * heart.st_vec[:, None, :]
    repol += j_shape[:, :, None] * heart.j_vec[:, None, :]

    p_start = -heart.pr[:, None]
    p_shape = bump(t, p_start, p_start + heart.p_dur[:, None]).astype(np.float32)
    p_wave = p_shape[:, :, None] * (heart.p_vec * heart.p_present[:, None])[:, None, :]
    spike = (np.abs(t + 1.0 / fs) < 0.5 / fs).astype(np.float32)  # one sample just before QRS onset
    spike_wave = spike[:, :, None] * (heart.spike_vec * heart.paced[:, None])[:, None, :]

    templates[:, SINUS] = p_wave + spike_wave + qrs + repol

    # Ventricular ectopic: a wide complex from one random focus, T discordant, no conducted P.
    u = rng.uniform
    pvc = np.flatnonzero(heart.n_pvc > 0)
    m = len(pvc)
    if m:
        ect = heart.subset(pvc)
        ect.qrs_dur = u(0.13, 0.17, m)
        ect.qrs_vec = np.zeros_like(ect.qrs_vec)
        ect.qrs_vec[:, 1] = direction(u(-90, 180, m), u(-80, 80, m))
        ect.qrs_vec[:, 4] = direction(u(-90, 180, m), u(-80, 80, m)) * u(0.2, 0.5, (m, 1))
        ect.qrs_center = np.tile(np.array([0.2, 0.42, 0.8, 0.75, 0.7], dtype=np.float32), (m, 1))
        ect.qrs_half = np.tile(np.array([0.2, 0.4, 0.2, 0.25, 0.3], dtype=np.float32), (m, 1))
        ect.axis = np.full(m, REFERENCE_AXIS)
        ect.horizontal = np.full(m, REFERENCE_HORIZONTAL)
        ect.qrs_amp = u(1.3, 2.2, m)
        ect_qrs = render_qrs(ect, fs)
        ect_dir = ect_qrs.sum(axis=1)
        ect_dir /= np.linalg.norm(ect_dir, axis=1, keepdims=True) + 1e-9
        ect_t = skewed_bump(t, ect.qrs_dur[:, None], qt[pvc] + 0.04, 0.55).astype(np.float32)
        ect_t_vec = -ect_dir * u(0.3, 0.6, (m, 1))
        templates[pvc, VENTRICULAR_ECTOPIC] = ect_qrs + ect_t[:, :, None] * ect_t_vec[:, None, :]

    # Atrial ectopic: P from a low or left atrial focus (often inverted in II), its own PR, normal conduction.
    pac = np.flatnonzero(heart.n_pac > 0)
    m = len(pac)
    if m:
        pac_pr = u(0.12, 0.18, m)[:, None]
        pac_p = bump(t, -pac_pr, -pac_pr + heart.p_dur[pac, None]).astype(np.float32)
        pac_vec = direction(u(-90, -20, m), u(-20, 40, m)) * u(0.08, 0.16, (m, 1))
        templates[pac, ATRIAL_ECTOPIC] = pac_p[:, :, None] * pac_vec[:, None, :] + qrs[pac] + repol[pac]
    return templates, pre
