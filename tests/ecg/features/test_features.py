"""ecg.features on signals whose answers are known by hand: rates and RR variability of beats placed at
chosen times, band power and moments of a sine, the frontal axis of given QRS areas, a flat line, the
training-only standardisation, the cache and the model heads that take the columns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecg.data.dataset import AGE_SEX_DIM, UNITS_PER_MV, ECGDataset
from ecg.data.source import split
from ecg.features import attach_features, cached_features, clinical_features, input_names, input_width
from ecg.features import cache as feature_cache
from ecg.features.clinical import frontal_axis
from ecg.features.layout import CLINICAL, LEAD_STATS, extra_columns, feature_width
from ecg.features.standardise import Standardiser, model_inputs
from ecg.features.stats import band_powers, lead_stats
from ecg.models import create_model

FS = 250
SECONDS = 10


def gaussian(t: np.ndarray, centre: float, width: float, amplitude: float) -> np.ndarray:
    return amplitude * np.exp(-0.5 * ((t - centre) / width) ** 2)


def beats_signal(r_times: list[float], *, p_wave: bool = True, qrs_width: float = 0.012,
                 gains: tuple[float, float] = (1.0, 2.0)) -> np.ndarray:
    """Leads I and II (mV, `[2, T]`): at each R time a P wave 160 ms before, a QRS of Gaussian `qrs_width`
    (seconds) and a T wave 300 ms after; lead II is lead I times `gains[1] / gains[0]`."""
    t = np.arange(SECONDS * FS) / FS
    x = np.zeros_like(t)
    for r in r_times:
        x += gaussian(t, r, qrs_width, 1.2) + gaussian(t, r + 0.30, 0.04, 0.3)
        if p_wave:
            x += gaussian(t, r - 0.16, 0.02, 0.15)
    return np.stack([gains[0] * x, gains[1] * x])


def dataset(signals_mv: np.ndarray, fs: int = FS) -> ECGDataset:
    """Records of leads I and II with two classes in turn."""
    n = len(signals_mv)
    labels = np.stack([np.arange(n) % 2, 1 - np.arange(n) % 2], axis=1)
    return ECGDataset(signals=np.round(signals_mv * UNITS_PER_MV).astype(np.int16), age=np.full(n, 60.0),
                      sex=np.ones(n), labels=labels, class_names=["x", "y"],
                      record_ids=[f"r{i}" for i in range(n)], lead_names=["I", "II"], fs=fs)


def column(values: np.ndarray, name: str) -> np.ndarray:
    return values[:, CLINICAL.index(name)]


def test_heart_rate_and_rr_variability_of_beats_at_known_times() -> None:
    regular = list(np.arange(0.5, 9.6, 0.8))                    # RR 0.8 s: 75 per minute, no variability
    alternating = list(np.cumsum([0.25] + [0.7, 0.9] * 6))  # RR 0.7, 0.9, ...: 12 intervals, 6 of each
    values = clinical_features(dataset(np.stack([beats_signal(regular), beats_signal(alternating)])))
    assert column(values, "hr_bpm") == pytest.approx([75.0, 75.0], abs=0.01)  # median RR 0.8 s either way
    # RR 0.7/0.9 alternating: mean 0.8 s, deviation 0.1 s -> SDNN 100 ms; successive differences +-0.2 s.
    assert column(values, "rr_sdnn_ms") == pytest.approx([0.0, 100.0], abs=1.0)
    assert column(values, "rr_rmssd_ms") == pytest.approx([0.0, 200.0], abs=2.0)
    # QTc (Bazett) is QT / sqrt(RR in s): RR 0.8 s here.
    assert column(values, "qtc_ms")[0] == pytest.approx(column(values, "qt_ms")[0] / np.sqrt(0.8), rel=1e-5)


def test_intervals_follow_the_waves_and_a_missing_p_wave_is_nan() -> None:
    r = list(np.arange(0.5, 9.6, 0.8))
    values = clinical_features(dataset(np.stack([beats_signal(r), beats_signal(r, qrs_width=0.03),
                                                 beats_signal(r, p_wave=False)])))
    narrow, wide, no_p = values
    # P peak 160 ms before R with a 20 ms spread: onset at 20% of its peak, 1.79 spreads earlier (196 ms),
    # and the QRS starts a little before R: PR between 130 and 200 ms.
    assert 130 <= narrow[CLINICAL.index("pr_ms")] <= 200
    assert wide[CLINICAL.index("qrs_ms")] > narrow[CLINICAL.index("qrs_ms")] + 40  # 2.5x the QRS spread
    # T peak 300 ms after R (spread 40 ms): its end at 20% of the peak, about 370 ms after R.
    assert 330 <= narrow[CLINICAL.index("qt_ms")] <= 430
    assert np.isnan(no_p[CLINICAL.index("pr_ms")]) and np.isfinite(no_p[CLINICAL.index("qrs_ms")])


def test_frontal_axis_from_net_qrs_areas() -> None:
    # aVF = II - I/2. I = 1, II = 2: aVF 1.5 -> atan2(1.5, 1) = 56.31 deg. I = 1, II = 0.5: aVF 0 -> 0 deg.
    # I = -1, II = 0: aVF 0.5 -> 180 - 26.57 = 153.43 deg.
    areas = np.array([[1.0, 2.0], [1.0, 0.5], [-1.0, 0.0]])
    assert frontal_axis(areas, ["I", "II"]) == pytest.approx([56.31, 0.0, 153.43], abs=0.01)
    assert frontal_axis(np.array([[1.0, 0.0]]), ["I", "aVF"]) == pytest.approx([0.0])
    assert np.isnan(frontal_axis(areas[:, :1], ["V1"])).all()
    # Through the delineator: lead II = 2 x lead I gives the first case.
    values = clinical_features(dataset(beats_signal(list(np.arange(0.5, 9.6, 0.8)))[None]))
    assert column(values, "axis_deg") == pytest.approx([56.31], abs=0.5)


def test_band_power_and_moments_of_a_sine() -> None:
    t = np.arange(SECONDS * FS) / FS
    amplitude = 0.5
    sine = amplitude * np.sin(2 * np.pi * 10.0 * t)
    powers = band_powers(sine[None], FS)[0]  # bands 0.5-4, 4-15, 15-40 Hz
    assert powers[1] == pytest.approx(amplitude**2 / 2, rel=0.02)  # A^2/2 = 0.125 mV^2
    assert powers[0] < 1e-4 and powers[2] < 1e-4
    stats = dict(zip(LEAD_STATS, lead_stats(sine[None, None], FS)[0, 0]))
    assert stats["std"] == pytest.approx(amplitude / np.sqrt(2), rel=1e-3)
    assert stats["skew"] == pytest.approx(0.0, abs=1e-3)
    assert stats["kurtosis"] == pytest.approx(-1.5, abs=1e-3)  # a sine's excess kurtosis
    assert stats["logpow_4_15hz"] == pytest.approx(np.log10(0.125), abs=0.01)


def test_a_flat_line_gives_nan_measurements_flagged_missing_and_finite_stats() -> None:
    signals = np.stack([beats_signal(list(np.arange(0.5, 9.6, 0.8))), np.zeros((2, SECONDS * FS))])
    data = dataset(signals)
    values = clinical_features(data)
    assert np.isfinite(values[0]).all() and np.isnan(values[1]).all()
    stats = dict(zip(LEAD_STATS, lead_stats(np.zeros((1, 1, 100)), FS)[0, 0]))
    assert stats["std"] == 0 and stats["skew"] == 0 and stats["kurtosis"] == 0 and stats["logpow_4_15hz"] == -8
    inputs = model_inputs(np.zeros((2, 1)), values, np.array([True, True]))
    missing = inputs[:, 1 + len(CLINICAL):]
    assert missing.tolist() == [[0.0] * len(CLINICAL), [1.0] * len(CLINICAL)]
    assert (inputs[1, 1:1 + len(CLINICAL)] == 0).all()  # the training mean, standardised


def test_standardisation_is_fit_on_training_rows_only() -> None:
    values = np.array([[0.0], [2.0], [3.0], [1000.0]])
    train = np.array([True, True, False, False])
    fitted = Standardiser.fit(values[train])
    assert fitted.mean.tolist() == [1.0] and fitted.std.tolist() == [1.0]
    assert fitted.transform(values)[:3, 0].tolist() == [-1.0, 1.0, 2.0]
    assert fitted.transform(values)[3, 0] == 8.0  # clipped
    # Changing a validation value changes nothing for the training rows.
    other = values.copy()
    other[2] = -50.0
    clinical = np.zeros((4, len(CLINICAL)))
    assert np.array_equal(model_inputs(values, clinical, train)[:2], model_inputs(other, clinical, train)[:2])
    assert Standardiser.fit(np.array([[5.0], [5.0]])).std.tolist() == [1.0]  # a constant column


def test_attach_features_caches_and_joins_every_split(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    r = list(np.arange(0.5, 9.6, 0.8))
    signals = np.stack([beats_signal(r) * (1 + 0.1 * i) + 0.01 * rng.standard_normal((2, SECONDS * FS))
                        for i in range(20)])
    data = dataset(signals)
    splits = split(data, seed=0)
    attach_features(splits, data, cache_dir=tmp_path)
    width = feature_width(2)
    assert width == 2 * len(LEAD_STATS) + 2 * len(CLINICAL)
    for part in (splits.train, splits.val, splits.test):
        assert part.features.shape == (len(part), width)
        assert part.extra_inputs().shape == (len(part), input_width(2)) == (len(part), len(input_names(["I", "II"])))
    assert np.array_equal(splits.train.subset(np.array([1, 0])).features, splits.train.features[[1, 0]])
    # Standardised on train: the training rows of every finite column have mean 0.
    assert np.abs(splits.train.features[:, :2 * len(LEAD_STATS)].mean(axis=0)).max() < 1e-4
    # Read back from the cache the second time: computing again would fail.
    monkeypatch.setattr(feature_cache, "compute", lambda dataset: pytest.fail("features computed twice"))
    again = cached_features(data, cache_dir=tmp_path)
    assert again.record_ids == data.record_ids and np.array_equal(again.stats, cached_features(data, tmp_path).stats)
    (entry,) = tmp_path.glob("features-*.npz")
    entry.write_bytes(b"not an npz")  # a damaged entry is computed again, not trusted
    monkeypatch.setattr(feature_cache, "compute", lambda dataset: feature_cache.RawFeatures(
        stats=np.ones((20, 2 * len(LEAD_STATS))), clinical=np.ones((20, len(CLINICAL))), record_ids=dataset.record_ids))
    assert cached_features(data, cache_dir=tmp_path).stats.sum() == 20 * 2 * len(LEAD_STATS)


def test_head_joins_exactly_the_columns_its_options_name() -> None:
    n_leads = 2
    stats = list(range(AGE_SEX_DIM, AGE_SEX_DIM + n_leads * len(LEAD_STATS)))
    clinical = list(range(stats[-1] + 1, input_width(n_leads)))
    assert extra_columns(True, "none", n_leads) == [0, 1, 2, 3]
    assert extra_columns(False, "stats", n_leads) == stats
    assert extra_columns(True, "both", n_leads) == [0, 1, 2, 3, *stats, *clinical]
    torch.manual_seed(0)
    model = create_model("resnet", n_leads, 3, 500, depth=14, width=8, features="clinical").eval()
    base = create_model("resnet", n_leads, 3, 500, depth=14, width=8).eval()
    # The clinical values and their indicators (16 inputs) join the last FC layer of 3 outputs.
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in base.parameters()) == 16 * 3
    x, extra = torch.randn(2, n_leads, 500), torch.randn(2, input_width(n_leads))
    with torch.no_grad():
        out = model(x, extra)
        moved = extra.clone()
        moved[:, stats] += 5.0
        moved[:, :AGE_SEX_DIM] += 5.0
        assert torch.equal(out, model(x, moved))  # stats and age/sex are not its columns
        moved[:, clinical[0]] += 5.0
        assert not torch.allclose(out, model(x, moved))
    # 4 age/sex + 2 leads x 8 statistics + 8 measurements + 8 indicators = 36 columns.
    with pytest.raises(ValueError, match=r"features=.clinical. needs per-record inputs of shape \[2, 36\]"):
        model(x, extra[:, :AGE_SEX_DIM])
    with pytest.raises(ValueError, match="features must be one of none, stats, clinical, both"):
        create_model("resnet", n_leads, 3, 500, depth=14, width=8, features="wavelets")
