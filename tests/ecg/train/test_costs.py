"""Model costs on a hand-computed model: parameters, MACs (FLOPs / 2), latency and peak memory."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ecg.train.costs import count_params, macs_per_record, model_costs, peak_memory_mb


class Tiny(nn.Module):
    """Conv1d 2->3, kernel 5, no bias, on 10 samples (6 outputs), mean over time, Linear 3->4."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 5, bias=False)
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, age_sex: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=-1))


def test_macs_and_params_of_a_hand_computed_model() -> None:
    model = Tiny()
    assert count_params(model) == 3 * 2 * 5 + 3 * 4 + 4
    # conv: 3 channels x 6 positions x (2 x 5) products = 180; linear: 3 x 4 = 12.
    assert macs_per_record(model, n_leads=2, length=10, device=torch.device("cpu")) == 192
    assert model.training  # measuring leaves the mode as it was


def test_model_costs_on_cpu() -> None:
    costs = model_costs(Tiny(), n_leads=2, length=10, device="cpu")
    assert costs["params"] == 46 and costs["macs"] == 192
    assert 0 < costs["latency_ms_b64"] and 0 < costs["latency_ms_b1"] < 1000
    assert peak_memory_mb(torch.device("cpu")) > 10  # this Python process holds torch: tens of MiB at least


def test_costs_are_measured_on_the_models_device_with_its_inputs_made_there() -> None:
    # "meta", a second device type on a CPU-only machine (shapes, no data): a model moved there is measured
    # there, so its inputs were made there too (a CPU input would not reach a meta weight).
    costs = model_costs(Tiny().to("meta"), n_leads=2, length=10, device="meta")
    assert costs["params"] == 46 and costs["macs"] == 192


def test_measuring_a_model_on_another_device_than_its_weights_is_a_clear_error() -> None:
    # The GPU bug this guards: a trial measured a model still on the CPU with inputs on CUDA.
    with pytest.raises(ValueError, match="the model's weights are on cpu but its costs are measured on meta: "
                                         r"move the model to meta first \(model.to\(device\)\)"):
        model_costs(Tiny(), n_leads=2, length=10, device="meta")
