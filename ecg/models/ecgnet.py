"""ECGNet (the study's v1, v2, v3 as options of one class).

The input `[B, leads, T]` is treated as a one-channel image `[B, 1, leads, T]`. A long first kernel (about
50 samples) starts; a 2D stage of residual SE blocks with (1 x k) kernels follows, so one kernel slides along
every lead (weights shared across leads); then leads and channels are merged (`[B, C*leads, T']` + 1x1 conv)
and a 1D stage of residual SE blocks follows. v1 has one kernel size; v2 runs one 2D+1D branch per kernel
size ("3,5,7" by default) and concatenates their pooled features; v3 is v2 with a conv-conv-pool start,
dropout after that max-pool, fewer blocks and four downsamplings in the 1D stage.
"""
from __future__ import annotations

import torch
from torch import nn

from ecg.models.conv import SameConv1d, SameConv2dTime, parse_kernels
from ecg.models.heads import Head
from ecg.models.registry import register_family
from ecg.models.se import SqueezeExcite


class ResidualSEBlock(nn.Module):
    """Pre-activation residual block: (BN-ReLU-conv) x 2 with dropout between, SE, + shortcut.

    `two_d=True` uses (1 x k) kernels on `[B, C, leads, T]`; otherwise k-wide 1D kernels on `[B, C, T]`.
    A stride of 2 halves the time axis (never the leads).
    """

    def __init__(self, channels: int, kernel: int, *, stride: int = 1, two_d: bool = False,
                 se_reduction: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        conv = SameConv2dTime if two_d else SameConv1d
        norm = nn.BatchNorm2d if two_d else nn.BatchNorm1d
        self.bn1 = norm(channels)
        self.conv1 = conv(channels, channels, kernel, stride=stride)
        self.bn2 = norm(channels)
        self.drop = nn.Dropout(dropout)
        self.conv2 = conv(channels, channels, kernel)
        self.se = SqueezeExcite(channels, se_reduction) if se_reduction > 0 else nn.Identity()
        # Strided shortcut: max-pool over time, as ECGNet-style residual nets do (no extra weights).
        pool = nn.MaxPool2d((1, stride), ceil_mode=True) if two_d else nn.MaxPool1d(stride, ceil_mode=True)
        self.shortcut = pool if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(self.drop(torch.relu(self.bn2(out))))
        return self.se(out) + self.shortcut(x)


class ECGNetBranch(nn.Module):
    """One kernel size's 2D stage, lead/channel merge and 1D stage, ending in global average pooling."""

    def __init__(self, n_leads: int, kernel: int, *, width: int, width_1d: int, blocks_2d: int, blocks_1d: int,
                 downsamples_1d: int, se_reduction: int, dropout: float) -> None:
        super().__init__()
        self.stage_2d = nn.Sequential(*[
            ResidualSEBlock(width, kernel, stride=2, two_d=True, se_reduction=se_reduction, dropout=dropout)
            for _ in range(blocks_2d)
        ])
        self.merge = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.Flatten(1, 2),
            SameConv1d(width * n_leads, width_1d, 1), nn.BatchNorm1d(width_1d), nn.ReLU(),
        )
        self.stage_1d = nn.Sequential(*[
            ResidualSEBlock(width_1d, kernel, stride=2 if index < downsamples_1d else 1,
                            se_reduction=se_reduction, dropout=dropout)
            for index in range(blocks_1d)
        ])
        self.out = nn.Sequential(nn.BatchNorm1d(width_1d), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.stage_1d(self.merge(self.stage_2d(x)))).mean(dim=2)


class ECGNet(nn.Module):
    """Stem -> one branch per kernel size -> concatenated pooled features -> head."""

    def __init__(self, n_leads: int, n_classes: int, *, kernels: list[int], conv_conv_pool: bool = False,
                 width: int = 32, width_1d: int = 128, stem_kernel: int = 50, blocks_2d: int = 2,
                 blocks_1d: int = 4, downsamples_1d: int = 2, se_reduction: int = 16, dropout: float = 0.1,
                 use_age_sex: bool = False, features: str = "none") -> None:
        super().__init__()
        if downsamples_1d > blocks_1d:
            raise ValueError(f"ECGNet downsamples_1d={downsamples_1d} exceeds blocks_1d={blocks_1d}")
        if min(width, width_1d, stem_kernel) < 1 or min(blocks_2d, blocks_1d, downsamples_1d) < 0:
            raise ValueError("ECGNet widths and kernels must be >= 1 and block counts >= 0")
        layers: list[nn.Module] = [SameConv2dTime(1, width, stem_kernel, stride=2), nn.BatchNorm2d(width), nn.ReLU()]
        if conv_conv_pool:
            # v3: a second conv and a max-pool, then dropout after the pool.
            layers += [SameConv2dTime(width, width, stem_kernel), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d((1, 2), ceil_mode=True), nn.Dropout(dropout)]
        self.stem = nn.Sequential(*layers)
        self.branches = nn.ModuleList(
            ECGNetBranch(n_leads, kernel, width=width, width_1d=width_1d, blocks_2d=blocks_2d, blocks_1d=blocks_1d,
                         downsamples_1d=downsamples_1d, se_reduction=se_reduction, dropout=dropout)
            for kernel in kernels
        )
        self.head = Head(width_1d * len(kernels), n_classes, use_age_sex=use_age_sex, dropout=dropout,
                         features=features, n_leads=n_leads)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        stem = self.stem(x.unsqueeze(1))
        features = torch.cat([branch(stem) for branch in self.branches], dim=1)
        return self.head(features, extra)


@register_family(
    "ecgnet",
    {"version": "v1", "width": 32, "width_1d": 128, "stem_kernel": 50, "kernel": 7, "kernels": "3,5,7",
     "blocks_2d": 2, "blocks_1d": 6, "downsamples_1d": 3, "se_reduction": 16},
    versions={
        "v1": {},
        "v2": {},
        "v3": {"blocks_2d": 1, "blocks_1d": 4, "downsamples_1d": 4},
    },
)
def build_ecgnet(n_leads: int, n_classes: int, length: int, *, version: str, kernel: int, kernels: str,
                 **options) -> ECGNet:
    """v1 uses the single `kernel`; v2 and v3 use one branch per size in `kernels`."""
    kernel_list = [kernel] if version == "v1" else parse_kernels(kernels)
    return ECGNet(n_leads, n_classes, kernels=kernel_list, conv_conv_pool=version == "v3", **options)
