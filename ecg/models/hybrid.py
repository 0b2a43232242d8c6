"""SE-ResNet feeding a GRU, in the study's three ways of connecting them.

The SE-ResNet body turns `[B, leads, T]` into `[B, C, T']`; a 1x1 convolution reduces C to one or eight
channels, which are average-pooled to `seq_len` samples (so any input length gives the same GRU input) and
segmented into steps of `step_features` samples:
  - "1to1": one channel into one GRU;
  - "8to8": eight channels into eight GRU branches;
  - "1to8": one channel re-arranged into eight consecutive pieces, one GRU branch each.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ecg.models.conv import SameConv1d
from ecg.models.heads import Head
from ecg.models.recurrent import RecurrentBranches
from ecg.models.registry import register_family
from ecg.models.resnet import ResNetBody

# connection -> (channels out of the CNN, GRU branches)
CONNECTIONS: dict[str, tuple[int, int]] = {"1to1": (1, 1), "8to8": (8, 8), "1to8": (1, 8)}


class HybridNet(nn.Module):
    """SE-ResNet body -> 1x1 conv to 1 or 8 channels -> pool to `seq_len` -> GRU branches -> FC head."""

    def __init__(self, n_leads: int, n_classes: int, *, connection: str, seq_len: int, step_features: int,
                 hidden: int, layers: int, bidirectional: bool, shared: bool, fc_hidden: int, dropout: float,
                 use_age_sex: bool, features: str = "none", **body_options: int) -> None:
        super().__init__()
        if connection not in CONNECTIONS:
            raise ValueError(f"hybrid connection {connection!r} unknown; valid: {', '.join(CONNECTIONS)}")
        channels, n_branches = CONNECTIONS[connection]
        per_branch = seq_len // (n_branches // channels)
        if seq_len < 1 or step_features < 1 or seq_len % (n_branches // channels) or per_branch % step_features:
            raise ValueError(
                f"hybrid {connection}: seq_len={seq_len} must split into {n_branches // channels} piece(s)"
                f" of whole steps of step_features={step_features} samples"
            )
        self.channels, self.n_branches, self.seq_len = channels, n_branches, seq_len
        self.steps, self.step_features = per_branch // step_features, step_features
        self.body = ResNetBody(n_leads, dropout=dropout, **body_options)
        self.reduce = nn.Sequential(SameConv1d(self.body.out_channels, channels, 1), nn.BatchNorm1d(channels))
        self.gru = RecurrentBranches("gru", n_branches, step_features, self.steps, shared=shared, hidden=hidden,
                                     layers=layers, bidirectional=bidirectional, dropout=dropout, attention="none")
        self.head = Head(self.gru.out_features, n_classes, hidden=fc_hidden, use_age_sex=use_age_sex, dropout=dropout,
                         features=features, n_leads=n_leads)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        maps = F.adaptive_avg_pool1d(self.reduce(self.body(x)), self.seq_len)
        # [B, channels, seq_len] -> [B, branches, steps, step_features]; "1to8" cuts the one channel in 8.
        segments = maps.reshape(x.shape[0], self.n_branches, self.steps, self.step_features)
        return self.head(self.gru(segments), extra)


@register_family(
    "hybrid",
    {"connection": "8to8", "depth": 26, "width": 32, "cardinality": 1, "base_width": 64, "se_reduction": 16,
     "stem_kernel": 15, "block_kernel": 9, "seq_len": 160, "step_features": 4, "hidden": 64, "layers": 1,
     "bidirectional": False, "shared": False, "fc_hidden": 64},
)
def build_hybrid(n_leads: int, n_classes: int, length: int, **options) -> HybridNet:
    """SE-ResNet + GRU; `connection` picks one of the study's three ways of joining them."""
    return HybridNet(n_leads, n_classes, **options)
