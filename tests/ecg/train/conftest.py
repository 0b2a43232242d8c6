"""Small learnable data and a tiny model, so the training tests depend on no other part of the project.

Each class puts a sine wave of its own frequency on one lead; a record's labels are which waves it carries,
under noise. A few conv layers learn that in a few epochs of a few hundred 2-lead, 256-sample records.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ecg.data.dataset import UNITS_PER_MV, ECGDataset

N_LEADS, LENGTH, CLASSES = 2, 256, ("slow", "fast", "mid")
PREVALENCE = 0.3
NOISE_MV = 1.0


def make_dataset(n: int, seed: int) -> ECGDataset:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(CLASSES))) < PREVALENCE).astype(np.uint8)
    t = np.arange(LENGTH) / 500.0
    mv = NOISE_MV * rng.standard_normal((n, N_LEADS, LENGTH))
    for c, (lead, hz) in enumerate([(0, 8.0), (1, 40.0), (1, 15.0)]):
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
        mv[:, lead] += labels[:, c:c + 1] * np.sin(2 * np.pi * hz * t + phase)
    age = rng.uniform(20, 90, n).astype(np.float32)
    age[::7] = np.nan
    return ECGDataset(
        signals=np.round(mv * UNITS_PER_MV).astype(np.int16),
        age=age,
        sex=rng.integers(0, 2, n).astype(np.float32),
        labels=labels,
        class_names=list(CLASSES),
        record_ids=[f"r{seed}_{i}" for i in range(n)],
        lead_names=["I", "II"],
    )


class TinyNet(nn.Module):
    """conv-BN-ReLU x2, mean pooling, dropout, linear; takes (x, age_sex) like every project model."""

    def __init__(self, n_leads: int = N_LEADS, n_classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(n_leads, width, 9, padding=4), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 9, padding=4, stride=2), nn.BatchNorm1d(width), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2))
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor, age_sex: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="session")
def splits() -> tuple[ECGDataset, ECGDataset]:
    return make_dataset(384, seed=1), make_dataset(128, seed=2)


class Frozen(nn.Module):
    """Fixed features, and one parameter that gets zero gradient: validation F1 is the same every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, age_sex: torch.Tensor | None = None) -> torch.Tensor:
        return x[:, :1, :3].mean(dim=1) + 0.0 * self.unused


@pytest.fixture
def frozen_model() -> type[Frozen]:
    """A model whose validation F1 never changes (early stopping, plateau schedule)."""
    return Frozen


@pytest.fixture
def tiny_model():
    def build(seed: int = 0) -> TinyNet:
        torch.manual_seed(seed)
        return TinyNet()
    return build


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # These models are tiny: a second intra-op thread only adds synchronisation, which on a shared
    # 2-core machine turns milliseconds into seconds.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
