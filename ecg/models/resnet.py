"""1D bottleneck ResNet for ECGs: one block covers ResNet, ResNeXt and SE-ResNet (the timm pattern).

ResNeXt is the same bottleneck with `cardinality` groups of `base_width` channels (ResNeXt-50-2x64d:
cardinality 2, base width 64); SE-ResNet adds squeeze-excitation before the residual sum. As in the study,
the stem and block kernels are enlarged for 500 Hz signals and dropout sits inside each block.
"""
from __future__ import annotations

import torch
from torch import nn

from ecg.models.conv import SameConv1d
from ecg.models.heads import Head
from ecg.models.registry import register_family
from ecg.models.se import SqueezeExcite

# Bottleneck blocks per stage for each depth (3 convs per block + stem + FC = depth).
LAYOUTS: dict[int, tuple[int, int, int, int]] = {
    14: (1, 1, 1, 1),
    26: (2, 2, 2, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce -> k-wide grouped conv (stride) -> dropout -> 1x1 expand -> SE -> + shortcut."""

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1, cardinality: int = 1,
                 base_width: int = 64, kernel: int = 9, se_reduction: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * cardinality
        out_channels = planes * EXPANSION
        self.conv1 = SameConv1d(in_channels, width, 1)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = SameConv1d(width, width, kernel, stride=stride, groups=cardinality)
        self.bn2 = nn.BatchNorm1d(width)
        self.drop = nn.Dropout(dropout)
        self.conv3 = SameConv1d(width, out_channels, 1)
        self.bn3 = nn.BatchNorm1d(out_channels)
        self.se = SqueezeExcite(out_channels, se_reduction) if se_reduction > 0 else nn.Identity()
        self.shortcut = (
            nn.Sequential(SameConv1d(in_channels, out_channels, 1, stride=stride), nn.BatchNorm1d(out_channels))
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.drop(torch.relu(self.bn2(self.conv2(out))))
        out = self.se(self.bn3(self.conv3(out)))
        return torch.relu(out + self.shortcut(x))


class ResNetBody(nn.Module):
    """Stem (long strided conv + max-pool) and four bottleneck stages: `[B, leads, T]` -> `[B, C, ~T/32]`."""

    def __init__(self, n_leads: int, *, depth: int = 50, width: int = 64, cardinality: int = 1,
                 base_width: int = 64, se_reduction: int = 0, stem_kernel: int = 15, block_kernel: int = 9,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"ResNet depth {depth} unknown; valid depths: {sorted(LAYOUTS)}")
        for name, value in (("width", width), ("cardinality", cardinality), ("base_width", base_width),
                            ("stem_kernel", stem_kernel), ("block_kernel", block_kernel)):
            if value < 1:
                raise ValueError(f"ResNet {name} must be >= 1, got {value}")
        if int(width * base_width / 64) < 1:
            raise ValueError(f"ResNet width {width} x base_width {base_width}/64 leaves no channels per group")
        self.stem = nn.Sequential(
            SameConv1d(n_leads, width, stem_kernel, stride=2),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = []
        in_channels = width
        for stage, n_blocks in enumerate(LAYOUTS[depth]):
            planes = width * 2**stage
            for index in range(n_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(Bottleneck(in_channels, planes, stride=stride, cardinality=cardinality,
                                         base_width=base_width, kernel=block_kernel, se_reduction=se_reduction,
                                         dropout=dropout))
                in_channels = planes * EXPANSION
        self.stages = nn.Sequential(*blocks)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ResNet1d(nn.Module):
    """ResNet body -> global average pool -> head (age/sex joins before the last FC layer)."""

    def __init__(self, n_leads: int, n_classes: int, *, use_age_sex: bool = False, dropout: float = 0.0,
                 features: str = "none", **body_options: int) -> None:
        super().__init__()
        self.body = ResNetBody(n_leads, dropout=dropout, **body_options)
        self.head = Head(self.body.out_channels, n_classes, use_age_sex=use_age_sex, dropout=dropout,
                         features=features, n_leads=n_leads)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=2), extra)


_RESNET_DEFAULTS = {
    "depth": 50,
    "width": 64,
    "cardinality": 1,
    "base_width": 64,
    "se_reduction": 0,
    "stem_kernel": 15,
    "block_kernel": 9,
}


def _build(n_leads: int, n_classes: int, length: int, **options) -> ResNet1d:
    return ResNet1d(n_leads, n_classes, **options)


# Three families, one block: they differ only in their defaults (like timm's registered variants).
register_family("resnet", _RESNET_DEFAULTS)(_build)
register_family("resnext", {**_RESNET_DEFAULTS, "cardinality": 2, "base_width": 64})(_build)
register_family("seresnet", {**_RESNET_DEFAULTS, "se_reduction": 16})(_build)
