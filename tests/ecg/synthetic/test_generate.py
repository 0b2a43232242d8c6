"""The generator's contract: shapes, scale, determinism, label structure, class frequencies, options, errors."""
from __future__ import annotations

import numpy as np
import pytest

from ecg.data.dataset import ALL_12_LEADS, HEFEI_LEADS, UNITS_PER_MV
from ecg.synthetic import RHYTHM_CLASSES, SYNTHETIC_CLASSES, generate
from ecg.synthetic.diagnoses import DIAGNOSES, ROUND2_RECORDS, sample_labels


@pytest.fixture(scope="module")
def default_set():
    return generate(300, seed=5)


def test_shapes_dtypes_and_names(default_set):
    d = default_set
    assert d.signals.shape == (300, 8, 5000) and d.signals.dtype == np.int16
    assert d.lead_names == list(HEFEI_LEADS) and d.fs == 500 and d.units_per_mv == UNITS_PER_MV
    assert d.class_names == list(SYNTHETIC_CLASSES) and len(SYNTHETIC_CLASSES) >= 20
    assert d.labels.shape == (300, len(SYNTHETIC_CLASSES)) and d.labels.dtype == np.uint8
    assert len(set(d.record_ids)) == 300
    assert d.age.dtype == np.float32 and d.sex.dtype == np.float32


def test_signals_are_millivolt_scale_ecgs(default_set):
    mv = default_set.signals / UNITS_PER_MV
    # A QRS of a few tenths to a few mV in every record, nothing near the int16 limits.
    peak_to_peak = (mv.max(axis=2) - mv.min(axis=2)).max(axis=1)
    assert np.all(peak_to_peak > 0.3) and np.all(peak_to_peak < 12)
    assert np.abs(default_set.signals).max() < 10000


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate(40, seed=3), generate(40, seed=3), generate(40, seed=4)
    assert np.array_equal(a.signals, b.signals) and np.array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.age, b.age)
    assert not np.array_equal(a.signals, c.signals)


def test_one_to_six_labels_and_exactly_one_rhythm(default_set):
    counts = default_set.labels.sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 6
    rhythm = [SYNTHETIC_CLASSES.index(name) for name in RHYTHM_CLASSES]
    assert np.all(default_set.labels[:, rhythm].sum(axis=1) == 1)


def test_balanced_labels_respect_exclusions_and_implications():
    labels = sample_labels(5000, True, np.random.default_rng(0)).astype(bool)
    index = {name: k for k, name in enumerate(SYNTHETIC_CLASSES)}
    for d in DIAGNOSES:
        for other in d.excludes:
            assert not (labels[:, index[d.name]] & labels[:, index[other]]).any(), (d.name, other)
        for implied in d.implies:
            assert labels[labels[:, index[d.name]], index[implied]].all()
        if d.requires:
            have = labels[:, [index[r] for r in d.requires]].any(axis=1)
            assert not (labels[:, index[d.name]] & ~have).any()
    assert labels.sum(axis=1).max() <= 6


def test_default_frequencies_follow_round2_imbalance():
    labels = sample_labels(20000, False, np.random.default_rng(1))
    freq = labels.mean(axis=0)
    index = {name: k for k, name in enumerate(SYNTHETIC_CLASSES)}
    assert 0.42 < freq[index["sinus rhythm"]] < 0.52  # round 2: 9,501 of 20,036
    assert freq[index["sinus rhythm"]] > freq[index["sinus bradycardia"]] > freq[index["atrial fibrillation"]]
    for d in DIAGNOSES:
        real = d.round2_count / ROUND2_RECORDS
        if real > 0.01 and not d.rhythm:  # common ones within a third of the real share
            assert abs(freq[index[d.name]] - real) < real / 3, d.name
    rare = [index[d.name] for d in DIAGNOSES if d.round2_count / ROUND2_RECORDS < 0.002]
    assert len(rare) >= 5 and np.all(freq[rare] < 0.01) and np.all(freq[rare] > 0.001)


def test_balanced_frequencies_are_roughly_uniform():
    freq = sample_labels(20000, True, np.random.default_rng(2)).mean(axis=0)
    rhythm = [SYNTHETIC_CLASSES.index(name) for name in RHYTHM_CLASSES]
    assert np.allclose(freq[rhythm], 1 / len(rhythm), atol=0.02)
    assert freq.min() > 0.07 and freq.max() < 0.3


def test_age_and_sex_with_a_few_percent_missing():
    d = generate(2, seed=0)
    labels = sample_labels(20000, False, np.random.default_rng(3))
    from ecg.synthetic.diagnoses import demographics

    age, sex = demographics(labels, np.random.default_rng(3))
    for values in (age, sex):
        assert 0.03 < np.isnan(values).mean() < 0.12
    assert 35 < np.nanmean(age) < 52 and np.nanmin(age) >= 2 and np.nanmax(age) <= 98
    assert set(np.unique(sex[~np.isnan(sex)])) == {0.0, 1.0}
    assert d.age.shape == (2,)


def test_twelve_leads_obey_einthoven_and_goldberger():
    d = generate(10, seed=1, leads=ALL_12_LEADS)
    x = {name: d.signals[:, k].astype(int) for k, name in enumerate(d.lead_names)}
    assert np.abs(x["III"] - (x["II"] - x["I"])).max() <= 1  # rounding only
    assert np.abs(x["aVR"] + (x["I"] + x["II"]) / 2).max() <= 1
    assert np.abs(x["aVL"] - (x["I"] - x["II"] / 2)).max() <= 1
    assert np.abs(x["aVF"] - (x["II"] - x["I"] / 2)).max() <= 1
    eight = generate(10, seed=1)
    assert np.array_equal(eight.signals, d.signals[:, [d.lead_names.index(n) for n in HEFEI_LEADS]])


def test_sampling_rate_and_length_options():
    d = generate(20, seed=2, fs=250, length=2500)
    assert d.signals.shape == (20, 8, 2500) and d.fs == 250
    assert np.abs(d.signals).max() > 0.3 * UNITS_PER_MV


def test_noise_option_scales_the_nuisances():
    clean, noisy = generate(30, seed=6, noise=0.0), generate(30, seed=6, noise=2.0)
    assert np.array_equal(clean.labels, noisy.labels)

    def roughness(d):  # high-frequency content: second differences
        return np.abs(np.diff(d.signals.astype(float), n=2, axis=2)).mean()

    assert roughness(noisy) > 3 * roughness(clean)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be"), ({"n": 5, "noise": -1}, "noise"), ({"n": 5, "fs": 50}, "fs"),
    ({"n": 5, "length": 100}, "length"), ({"n": 5, "leads": ("I", "V7")}, "V7"),
])
def test_bad_options_raise_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(**kwargs)
