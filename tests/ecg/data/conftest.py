"""Small datasets written to tmp folders, for the reader tests (short records keep the tests fast)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecg.data import HEFEI_LEADS, ECGDataset
from ecg.data.hefei import write_hefei

LENGTH = 50  # samples per record in the small written datasets


def small_dataset(n: int = 6, length: int = LENGTH, seed: int = 0) -> ECGDataset:
    """`n` records of random int16 signals, 3 classes, one missing age and one missing sex."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, 3), dtype=np.uint8)
    labels[np.arange(n), np.arange(n) % 3] = 1
    labels[0, 1] = 1
    age = rng.integers(20, 90, n).astype(np.float32)
    sex = (np.arange(n) % 2).astype(np.float32)
    age[1 % n] = np.nan
    sex[2 % n] = np.nan
    return ECGDataset(signals=rng.integers(-3000, 3000, (n, len(HEFEI_LEADS), length), dtype=np.int16),
                      age=age, sex=sex, labels=labels, class_names=["窦性心律", "T波改变", "AF"],
                      record_ids=[str(100000 + i) for i in range(n)])


@pytest.fixture
def make_dataset():
    """The `small_dataset` factory, for tests that need another size."""
    return small_dataset


@pytest.fixture
def small() -> ECGDataset:
    return small_dataset()


@pytest.fixture
def hefei_folder(tmp_path: Path, small: ECGDataset) -> Path:
    """`small` written in the Hefei layout: tmp/ecg_train.txt, ecg_arrythmia.txt, ecg_train/NAME.txt."""
    return write_hefei(small, tmp_path / "hefei")
