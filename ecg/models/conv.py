"""Convolutions with "same" padding for any kernel size and stride (the study used even kernels such as 10)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(kernel: int) -> tuple[int, int]:
    """(left, right) zero padding so that a stride-s convolution outputs ceil(length / s) samples."""
    total = kernel - 1
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """`nn.Conv1d` whose output length is ceil(input / stride), also for even kernels.

    PyTorch's symmetric padding cannot do that for even kernels, and a residual block needs the main path
    and the strided 1x1 shortcut to agree on the length whatever the input length is.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        left, right = same_padding(kernel_size)
        # Odd kernels pad symmetrically inside the convolution; only even ones need a separate (copying) pad.
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=bias,
                         padding=left if left == right else 0)
        self._pad = None if left == right else (left, right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if self._pad is None else F.pad(x, self._pad))


class SameConv2dTime(nn.Conv2d):
    """A (1 x k) `nn.Conv2d` over `[B, C, leads, time]`: the same kernel slides along every lead."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool = False) -> None:
        left, right = same_padding(kernel_size)
        super().__init__(in_channels, out_channels, (1, kernel_size), stride=(1, stride), bias=bias,
                         padding=(0, left) if left == right else 0)
        self._pad = None if left == right else (left, right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if self._pad is None else F.pad(x, self._pad))


def parse_kernels(text: str) -> list[int]:
    """"3,5,7" -> [3, 5, 7]; ValueError on anything but a comma-separated list of positive ints."""
    try:
        kernels = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ValueError(f"kernel set {text!r} must be comma-separated positive ints like '3,5,7'") from None
    if not kernels or min(kernels) < 1:
        raise ValueError(f"kernel set {text!r} must be comma-separated positive ints like '3,5,7'")
    return kernels
