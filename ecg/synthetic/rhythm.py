"""Beat timing: RR intervals of sinus, fibrillating and paced hearts, premature beats, and beat placement.

RR intervals come from the rhythm's mechanism: a sinus node with small heart-rate variability and respiratory
modulation (large in sinus arrhythmia), independent irregular conduction in atrial fibrillation (no P waves,
RR drawn with a coefficient of variation of 15-30 %), or a fixed pacemaker interval. A premature ventricular
beat is followed by a compensatory pause (the sinus node is not reset); a premature atrial beat resets it.
"""
from __future__ import annotations

import numpy as np

from ecg.synthetic.heart import ATRIAL_ECTOPIC, POST_S, PRE_S, SINUS, VENTRICULAR_ECTOPIC, Heart

MIN_RR_S = 0.3  # no two ventricular activations closer than this (refractory period)
LEAD_IN_S = POST_S + 0.1  # beats start this long before the record, so its first samples show a T wave


def beat_times(heart: Heart, duration: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`(onsets [n, B] in seconds, kinds [n, B])`: QRS onset of every beat that touches the record."""
    n = len(heart)
    rr0 = heart.rr[:, None]
    n_beats = int(np.ceil((duration + LEAD_IN_S + PRE_S) / MIN_RR_S)) + 2
    index = np.arange(n_beats)[None, :]

    # Sinus node: respiratory modulation and small random variability around the mean RR.
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    resp = heart.resp_amp[:, None] * np.sin(2 * np.pi * index * rr0 / heart.resp_period[:, None] + phase)
    rr = rr0 * (1 + resp + heart.rr_jitter[:, None] * rng.standard_normal((n, n_beats)))
    # Atrial fibrillation: each interval an independent draw (log-normal with the wanted CV).
    af = heart.rr_cv > 0
    if af.any():
        cv = heart.rr_cv[af, None]
        sigma = np.sqrt(np.log1p(cv**2))
        draws = np.exp(sigma * rng.standard_normal((int(af.sum()), n_beats)) - sigma**2 / 2)
        rr[af] = rr0[af] * draws
    rr = np.maximum(rr, MIN_RR_S)

    kinds = np.full((n, n_beats), SINUS, dtype=np.int64)
    start = -LEAD_IN_S - rng.uniform(0, 1, (n, 1)) * rr0
    _place_premature(heart, rr, kinds, start, duration, rng)
    # rr[:, j] is the interval ending at beat j; the first beat sits at `start`.
    onsets = start + np.concatenate([np.zeros((n, 1)), np.cumsum(rr[:, 1:], axis=1)], axis=1)
    return onsets, kinds


def _place_premature(heart: Heart, rr: np.ndarray, kinds: np.ndarray, start: np.ndarray, duration: float,
                     rng: np.random.Generator) -> None:
    """Turn some visible beats into premature ones (in place): every other visible beat is a candidate, so two
    ectopic beats are never adjacent; PVCs take the first candidates of a random order, PACs the next."""
    wanted = heart.n_pvc + heart.n_pac
    if not wanted.any():
        return
    n, n_beats = rr.shape
    rr0 = heart.rr
    first = np.ceil((0.4 - start[:, 0]) / rr0).astype(np.int64) + 1
    last = np.floor((duration - 0.8 - start[:, 0]) / rr0).astype(np.int64)
    slots = 6
    candidates = first[:, None] + 2 * np.arange(slots)[None, :]
    valid = candidates <= np.minimum(last, n_beats - 2)[:, None]
    order = np.argsort(np.where(valid, rng.random((n, slots)), 2.0), axis=1)
    candidates = np.take_along_axis(candidates, order, axis=1)
    n_valid = valid.sum(axis=1)
    n_pvc = np.minimum(heart.n_pvc, np.maximum(n_valid - np.minimum(heart.n_pac, 1), 0))
    n_pac = np.minimum(heart.n_pac, n_valid - n_pvc)
    rows = np.arange(n)
    for slot in range(slots):
        beat = candidates[:, slot]
        is_pvc = slot < n_pvc
        is_pac = (slot >= n_pvc) & (slot < n_pvc + n_pac)
        coupling = np.where(is_pvc, rng.uniform(0.5, 0.7, n), rng.uniform(0.6, 0.8, n))
        early = np.maximum(coupling * rr0, MIN_RR_S)
        chosen = is_pvc | is_pac
        r = rows[chosen]
        b = beat[chosen]
        # A PVC leaves the sinus node undisturbed: the next beat comes when it would have (compensatory pause).
        # A PAC resets the node: the next beat follows one ordinary RR later.
        rr[r, b + 1] = np.where(is_pvc[chosen], rr[r, b] + rr[r, b + 1] - early[chosen], rr0[chosen])
        rr[r, b] = early[chosen]
        kinds[r, b] = np.where(is_pvc[chosen], VENTRICULAR_ECTOPIC, ATRIAL_ECTOPIC)


def place_beats(templates: np.ndarray, pre: int, onsets_s: np.ndarray, kinds: np.ndarray, fs: int,
                length: int) -> np.ndarray:
    """`[n, 3, length]` heart vector: each sample sums the templates of the beat that started last and its two
    neighbours (beats are at least 300 ms apart, so no sample is touched by more than three).

    Each template gets a trailing zero sample; any position outside a template's window is sent there, so the
    whole placement is three gathers with no masks.
    """
    n, n_kinds, width, _ = templates.shape
    padded = np.zeros((3, n, n_kinds, width + 1), dtype=np.float32)
    padded[:, :, :, :width] = templates.transpose(3, 0, 1, 2)
    flat = padded.reshape(3, -1)
    onsets = np.round(onsets_s * fs).astype(np.int32)
    # Index of the last beat at or before each sample: count onsets <= t (onsets are sorted per record).
    started = np.zeros((n, length), dtype=np.int32)
    r, b = np.nonzero((onsets >= 0) & (onsets < length))
    started[r, onsets[r, b]] = 1
    last = np.cumsum(started, axis=1, dtype=np.int32)
    last += (onsets < 0).sum(axis=1, dtype=np.int32)[:, None]  # index into the onsets padded with a sentinel
    # Sentinel beats before the first and after the last, far away, so their windows never reach the record.
    far = np.full((n, 1), -10 * length, dtype=np.int32)
    onsets = np.concatenate([far, onsets, -far], axis=1)
    # Flat position of each beat's template: (record, kind) row times the padded width.
    padded_kinds = np.pad(kinds, ((0, 0), (1, 1))).astype(np.int32)
    base = (np.arange(n, dtype=np.int32)[:, None] * n_kinds + padded_kinds) * (width + 1)
    start = (onsets - pre).ravel()
    base = base.ravel()
    last += (np.arange(n, dtype=np.int32) * onsets.shape[1])[:, None]  # flat position in the padded beat table
    samples = np.arange(length, dtype=np.int32)[None, :]
    out = np.zeros((n, 3, length), dtype=np.float32)
    for offset in (-1, 0, 1):
        beat = last + offset if offset else last
        rel = (samples - start[beat]).view(np.uint32)
        index = np.minimum(rel, np.uint32(width)).view(np.int32)
        index += base[beat]
        for axis in range(3):
            out[:, axis] += flat[axis].take(index)
    return out
