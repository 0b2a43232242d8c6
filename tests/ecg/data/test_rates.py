"""Resampling a dataset to a lower input rate (ecg.data.rates): values, shape, refusals, the cache."""
from __future__ import annotations

import numpy as np
import pytest

from ecg.data import HEFEI_LEADS, ECGDataset, fingerprint, rates
from ecg.data.rates import resample_dataset
from ecg.train.config import TrialConfig


def sine_dataset(fs: int, n: int = 4, seconds: int = 10, hz: float = 5.0) -> ECGDataset:
    """`n` records whose every lead is a `hz` sine of 1,000 units (4.88 mV), record i shifted by i/10 s."""
    t = np.arange(seconds * fs) / fs
    signals = np.stack([np.tile(1000 * np.sin(2 * np.pi * hz * (t + i / 10)), (len(HEFEI_LEADS), 1))
                        for i in range(n)])
    labels = np.eye(n, 2, dtype=np.uint8)
    return ECGDataset(signals=np.rint(signals).astype(np.int16), age=np.full(n, 50.0), sex=np.ones(n),
                      labels=labels, class_names=["A", "B"], record_ids=[f"r{i}" for i in range(n)], fs=fs)


def test_a_sine_resampled_to_100_hz_is_the_sine_sampled_at_100_hz(tmp_path) -> None:
    at_250 = sine_dataset(250)
    at_100 = resample_dataset(at_250, 100, cache_dir=tmp_path)
    assert at_100.fs == 100 and at_100.signals.shape == (4, 8, 1000) and at_100.signals.dtype == np.int16
    expected = sine_dataset(100).signals.astype(float)
    inner = slice(50, -50)  # the filter's edges (it pads with zeros) are not the signal's
    assert np.abs(at_100.signals[..., inner] - expected[..., inner]).max() <= 2  # int16 rounding both sides
    assert at_100.record_ids == at_250.record_ids and (at_100.labels == at_250.labels).all()
    np.testing.assert_array_equal(at_100.age, at_250.age)


def test_500_hz_to_250_and_100_hz_keeps_ten_seconds(tmp_path) -> None:
    at_500 = sine_dataset(500, n=2)
    assert resample_dataset(at_500, 250, cache_dir=tmp_path).n_samples == 2500
    assert resample_dataset(at_500, 100, cache_dir=tmp_path).n_samples == 1000


def test_same_rate_is_the_same_object_and_up_or_ragged_is_refused(tmp_path) -> None:
    data = sine_dataset(250, n=2)
    assert resample_dataset(data, 250, cache_dir=tmp_path) is data
    with pytest.raises(ValueError, match="cannot resample records at 250 Hz up to 500 Hz"):
        resample_dataset(data, 500, cache_dir=tmp_path)
    short = data.subset(np.arange(2))
    short.signals = short.signals[..., :2499]
    with pytest.raises(ValueError, match="2499 samples at 250 Hz are not a whole number of samples at 100 Hz"):
        resample_dataset(short, 100, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_resampling_is_per_record_so_a_subset_of_the_whole_equals_the_resampled_subset(tmp_path,
                                                                                         monkeypatch) -> None:
    """The search resamples each split, `python -m ecg.train` the whole set before splitting: the same values."""
    monkeypatch.setattr(rates, "CHUNK", 3)  # chunks that cut the subset differently
    data = sine_dataset(250, n=7)
    index = np.array([1, 4, 6])
    whole_then_subset = resample_dataset(data, 100, use_cache=False).subset(index)
    subset_then_whole = resample_dataset(data.subset(index), 100, use_cache=False)
    np.testing.assert_array_equal(whole_then_subset.signals, subset_then_whole.signals)


def test_a_second_resampling_is_read_from_the_cache(tmp_path, monkeypatch) -> None:
    data = sine_dataset(250, n=3)
    first = resample_dataset(data, 100, cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [rates.cache_key(data, 100)]

    def no_filtering(*args, **kwargs):
        raise AssertionError("resampled again instead of read from the cache")

    monkeypatch.setattr(rates, "resample_signals", no_filtering)
    again = resample_dataset(data, 100, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.signals, first.signals)
    assert again.fs == 100 and fingerprint(again) == fingerprint(first)
    assert rates.cache_key(data, 100) != rates.cache_key(data, 50)  # another rate, another entry


def test_a_trial_config_keeps_its_input_rate_through_the_flat_form() -> None:
    config = TrialConfig.from_flat({"family": "gru", "model/segmentation": "100x10", "data/fs": 100.0})
    assert config.fs == 100 and config.to_flat()["data/fs"] == 100
    assert TrialConfig.from_flat({"family": "gru", "data/fs": float("nan")}).fs is None  # an empty CSV cell
    assert "data/fs" not in TrialConfig(family="gru").to_flat()
    with pytest.raises(ValueError, match="data/fs must be an integer"):
        TrialConfig.from_flat({"family": "gru", "data/fs": "fast"})
