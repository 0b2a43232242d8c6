"""Shared by tests/ecg: label-only datasets from CinC-style Dx codes."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from ecg.data import ECGDataset


@pytest.fixture
def coded() -> Callable[..., ECGDataset]:
    """`coded([["59118001"], ...], prefix="A")`: one label-only record per code list, its classes the codes
    seen, record ids `<prefix>0000`, `<prefix>0001`, ... (CinC 2021's id prefix names the record's source)."""

    def make(codes_per_record: list[list[str]], prefix: str = "A") -> ECGDataset:
        names = sorted({c for codes in codes_per_record for c in codes})
        labels = np.array([[int(n in codes) for n in names] for codes in codes_per_record])
        n = len(codes_per_record)
        return ECGDataset(signals=None, age=np.full(n, np.nan), sex=np.full(n, np.nan), labels=labels,
                          class_names=names, record_ids=[f"{prefix}{i:04d}" for i in range(n)])

    return make
