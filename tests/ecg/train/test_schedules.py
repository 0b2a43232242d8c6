"""Learning-rate schedules: the lr each epoch starts with, as each schedule promises."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ecg.train import TrainConfig, fit


def lrs(splits, model: nn.Module, **config) -> list[float]:
    result = fit(model, *splits, TrainConfig(**config))
    return [h["lr"] for h in result.history]


def test_step_multiplies_by_a_tenth_after_each_milestone(splits, tiny_model):
    got = lrs(splits, tiny_model(), lr=1e-2, epochs=5, batch_size=128, schedule="step", step_milestones="2,4")
    assert got == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4])


def test_plateau_reduces_after_ten_epochs_without_improvement_down_to_the_floor(splits, frozen_model):
    # Epoch 1 sets the best F1; epochs 2..12 are 11 epochs without improvement (> patience 10).
    got = lrs(splits, frozen_model(), lr=1e-3, epochs=13, batch_size=128, schedule="plateau")
    assert got == pytest.approx([1e-3] * 12 + [1e-4])
    floor = lrs(splits, frozen_model(), lr=5e-8, epochs=13, batch_size=128, schedule="plateau")
    assert floor[-1] == pytest.approx(1e-8)


def test_plateau_keeps_the_rate_while_f1_improves(splits, tiny_model):
    got = lrs(splits, tiny_model(), lr=3e-3, epochs=4, batch_size=32, schedule="plateau")
    assert got == pytest.approx([3e-3] * 4)


def test_cosine_follows_the_half_cosine_over_the_run(splits, tiny_model):
    epochs, lr = 4, 1e-2
    got = lrs(splits, tiny_model(), lr=lr, epochs=epochs, batch_size=128, schedule="cosine")
    expected = [lr * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    assert got == pytest.approx(expected)


def test_onecycle_warms_up_then_anneals_per_batch(splits, tiny_model):
    lr = 1e-2
    got = lrs(splits, tiny_model(), lr=lr, epochs=6, batch_size=64, schedule="onecycle")
    assert got[0] == pytest.approx(lr / 25)  # torch's default div_factor
    peak = max(range(6), key=got.__getitem__)
    assert 0 < peak < 5 and got[peak] > 0.5 * lr
    assert got[-1] < got[peak] / 10


def test_none_keeps_the_rate(splits, tiny_model):
    assert lrs(splits, tiny_model(), lr=1e-3, epochs=3, batch_size=128, schedule="none") == [1e-3] * 3
