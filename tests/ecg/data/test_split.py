from __future__ import annotations

import numpy as np
import pytest

from ecg.data import DataError, load_labels
from ecg.data.split import (SPLITS, load_split, make_split, repair_coverage, save_split, split_sizes,
                            uncovered_classes)


def test_real_split_ratios_and_coverage(hefei_dir):
    dataset, _ = load_labels(hefei_dir)
    assignment = make_split(dataset.labels, seed=0)
    sizes = split_sizes(assignment)
    for name, ratio in zip(SPLITS, (0.7, 0.1, 0.2)):
        assert abs(sizes[name] / len(dataset) - ratio) < 0.01
    counts = {s: dataset.labels[assignment == s].sum(axis=0) for s in SPLITS}
    enough = dataset.labels.sum(axis=0) >= 3
    assert (counts["train"][enough] >= 1).all() and (counts["test"][enough] >= 1).all()
    assert uncovered_classes(dataset.labels, assignment) == []


def random_labels(n=300, c=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(np.uint8)
    labels[:, -1] = 0
    labels[[5, 77, 200], -1] = 1  # a class with exactly 3 records
    return labels


def test_same_seed_same_split_other_seed_differs():
    labels = random_labels()
    np.testing.assert_array_equal(make_split(labels, seed=3), make_split(labels, seed=3))
    assert (make_split(labels, seed=3) != make_split(labels, seed=4)).any()


@pytest.mark.parametrize("seed", range(5))
def test_rare_class_reaches_train_and_test(seed):
    labels = random_labels(seed=seed)
    assignment = make_split(labels, seed=seed)
    rare = assignment[labels[:, -1] == 1]
    assert "train" in rare and "test" in rare


def test_repair_moves_records_without_breaking_other_classes():
    labels = np.zeros((10, 2), dtype=np.uint8)
    labels[:3, 0] = 1  # class 0: records 0-2, all in val
    labels[:, 1] = 1  # class 1: everywhere
    assignment = np.array(["val", "val", "val", "train", "train", "train", "train", "test", "test", "val"])
    repair_coverage(labels, assignment)
    assert uncovered_classes(labels, assignment) == []
    assert sorted(assignment[:3]) == ["test", "train", "val"]
    assert (assignment[3:] == ["train"] * 4 + ["test", "test", "val"]).all()


def test_class_with_too_few_records_is_reported():
    labels = random_labels()
    labels[:, 0] = 0
    labels[9, 0] = 1
    with pytest.warns(UserWarning, match=r"class index\(es\) \[0\]"):
        assignment = make_split(labels)
    assert uncovered_classes(labels, assignment) == [0]
    names = [f"C{i}" for i in range(labels.shape[1])]
    names[0] = "LBBB"
    with pytest.warns(UserWarning, match=r"^classes LBBB have fewer than 3 records"):
        make_split(labels, class_names=names)


def test_csv_round_trip(tmp_path):
    labels = random_labels()
    ids = [f"rec{i}" for i in range(len(labels))]
    assignment = make_split(labels)
    path = save_split(tmp_path / "split.csv", ids, assignment)
    assert path.read_text().splitlines()[0] == "record_id,split"
    shuffled = ids[::-1]
    np.testing.assert_array_equal(load_split(path, shuffled), assignment[::-1])


def test_load_split_errors_name_file_and_line(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("record_id,split\na,train\nb,holdout\n")
    with pytest.raises(DataError, match=r"split\.csv, line 3: split 'holdout' is not train, val or test"):
        load_split(path, ["a", "b"])
    path.write_text("record_id,split\na,train\n")
    with pytest.raises(DataError, match=r"split\.csv: 1 record\(s\) of the dataset are not in the split "
                                        r"\(first: 'b'\)"):
        load_split(path, ["a", "b"])


def test_bad_ratios():
    with pytest.raises(DataError, match="ratios"):
        make_split(random_labels(), ratios=(0.5, 0.1, 0.1))


def test_the_stratifiers_draw_is_cached_and_a_cached_split_is_the_same(tmp_path, monkeypatch):
    """A second split of the same labels and seed reads the stratifier's draws from the cache (two: test, then
    val) and gives the same assignment, in a process that never imports scikit-learn; another seed or other
    labels draw anew."""
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    labels = random_labels()
    first = make_split(labels, seed=3)
    draws = sorted((tmp_path / "cache" / "draws").glob("split-*.npz"))
    assert len(draws) == 2
    np.save(tmp_path / "labels.npy", labels)
    code = ("import sys, numpy as np; from ecg.data.split import make_split; "
            f"a = make_split(np.load({str(tmp_path / 'labels.npy')!r}), seed=3); "
            f"np.save({str(tmp_path / 'again.npy')!r}, a); print('sklearn' in sys.modules, 'iterstrat' in sys.modules)")
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), first)
    make_split(labels, seed=4)
    other = labels.copy()
    other[0, 0] ^= 1
    make_split(other, seed=3)
    assert len(list((tmp_path / "cache" / "draws").glob("split-*.npz"))) == 6


@pytest.mark.parametrize("damage", ["garbage", "wrong records", "not a file"])
def test_a_damaged_cached_draw_is_drawn_again(damage, tmp_path, monkeypatch):
    """A cached draw that is not a draw of these records (cut, of another length, a folder in its place) is
    ignored: the split is drawn again, the same as before, and the entry rewritten."""
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    labels = random_labels()
    first = make_split(labels, seed=3)
    for draw in (tmp_path / "cache" / "draws").glob("split-*.npz"):
        if damage == "garbage":
            draw.write_bytes(b"PK\x03\x04 not a zip")
        elif damage == "wrong records":
            np.savez(draw, kept=np.arange(5), taken=np.arange(5, 9))
        else:
            draw.unlink()
            draw.mkdir()
    np.testing.assert_array_equal(make_split(labels, seed=3), first)
    if damage != "not a file":
        assert all(np.load(d)["kept"].size + np.load(d)["taken"].size > 9
                   for d in (tmp_path / "cache" / "draws").glob("split-*.npz"))


def test_a_cache_that_cannot_be_written_still_splits(tmp_path, monkeypatch):
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("ECG_CACHE_DIR", str(blocked))
    labels = random_labels()
    np.testing.assert_array_equal(make_split(labels, seed=3), make_split(labels, seed=3))
    assert blocked.read_text() == "a file where the cache folder would be"
