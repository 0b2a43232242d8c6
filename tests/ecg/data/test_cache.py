from __future__ import annotations

import os

import numpy as np
import pytest

from ecg.data import fingerprint, load_dataset
from ecg.data import loader


def test_second_load_comes_from_cache(hefei_folder, tmp_path, monkeypatch, small):
    cache = tmp_path / "cache"
    first = load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache)
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "signals.npy").exists()

    def fail(*_):
        raise AssertionError("parsed again instead of reading the cache")

    unreadable = [loader.Format(f.name, f.detect, f.read_labels, fail, f.source_files) for f in loader.FORMATS]
    monkeypatch.setattr(loader, "FORMATS", unreadable)
    second = load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache)
    np.testing.assert_array_equal(second.signals, first.signals)
    np.testing.assert_array_equal(second.age, first.age)
    assert second.record_ids == first.record_ids and second.class_names == first.class_names
    assert fingerprint(second) == fingerprint(first)


def test_changed_file_or_options_miss_the_cache(hefei_folder, tmp_path, small):
    cache = tmp_path / "cache"
    load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache)
    record = hefei_folder / "ecg_train" / "100002.txt"
    lines = record.read_text().splitlines()
    lines[1] = "1 1 1 1 1 1 1 1"
    record.write_text("\n".join(lines) + "\n")
    os.utime(record, ns=(record.stat().st_atime_ns, record.stat().st_mtime_ns + 10**9))
    changed = load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache)
    assert (changed.signals[2, :, 0] == 1).all()
    load_dataset(hefei_folder, length=small.n_samples, leads=("I", "II"), cache_dir=cache)
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 3


def test_cache_dir_from_environment(hefei_folder, tmp_path, monkeypatch, small):
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "env_cache"))
    load_dataset(hefei_folder, length=small.n_samples)
    assert any((tmp_path / "env_cache").iterdir())


def test_fingerprint_follows_content(small):
    same = small.subset(np.arange(len(small)))
    assert fingerprint(same) == fingerprint(small)
    same.signals[0, 0, 0] += 1
    assert fingerprint(same) != fingerprint(small)
    other = small.subset(np.arange(len(small)))
    other.age[0] = 33
    assert fingerprint(other) != fingerprint(small)
    assert len(fingerprint(small)) == 32


@pytest.mark.parametrize("use_cache", [True, False])
def test_use_cache_false_writes_nothing(hefei_folder, tmp_path, small, use_cache):
    cache = tmp_path / "cache"
    load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache, use_cache=use_cache)
    assert cache.exists() == use_cache


def test_unwritable_cache_warns_and_still_loads(hefei_folder, tmp_path, small):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write the dataset cache"):
        dataset = load_dataset(hefei_folder, length=small.n_samples, cache_dir=blocker)
    np.testing.assert_array_equal(dataset.signals, small.signals)


@pytest.mark.parametrize("name", ["arrays.npz", "signals.npy"])
def test_a_damaged_entry_is_parsed_again(name, hefei_folder, tmp_path, small):
    """An entry whose file was cut or overwritten (here: not a zip, not an .npy) is read from the records again."""
    cache = tmp_path / "cache"
    first = load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache)
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    (entry / name).write_bytes(b"PK\x03\x04 cut short")
    again = load_dataset(hefei_folder, length=small.n_samples, cache_dir=cache)
    np.testing.assert_array_equal(again.signals, first.signals)
    assert again.record_ids == first.record_ids
