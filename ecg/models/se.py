"""Squeeze-and-excitation channel attention (Hu et al. 2018) for 1D and 2D feature maps."""
from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Rescale each channel by a gate computed from its mean over all positions (time, or leads x time)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 8)  # a floor: with 1-4 units the gate can die at init
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=tuple(range(2, x.ndim)))
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))
        return x * gate.view(*gate.shape, *([1] * (x.ndim - 2)))
