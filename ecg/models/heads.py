"""The classifier head shared by every family: fully connected layers, with age/sex joining as in the study."""
from __future__ import annotations

import torch
from torch import nn

from ecg.data.dataset import AGE_SEX_DIM


class Head(nn.Module):
    """Features `[B, F]` (+ age/sex `[B, 4]`) -> logits `[B, n_classes]`.

    `hidden` = 0 gives one FC layer; > 0 gives FC(hidden) -> ReLU -> dropout -> FC(n_classes).
    With `use_age_sex`, the age/sex features are concatenated to the input of the last FC layer
    (`join_before=1`, the study's default) or of the last two (`join_before=2`, the study's GRU v3).
    """

    def __init__(self, in_features: int, n_classes: int, *, hidden: int = 0, use_age_sex: bool = False,
                 join_before: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if join_before not in (1, 2) or (join_before == 2 and hidden <= 0):
            raise ValueError(
                f"age/sex can join before the last 1 or 2 FC layers; got {join_before} with hidden={hidden}"
            )
        self.use_age_sex = use_age_sex
        self.join_before = join_before
        extra = AGE_SEX_DIM if use_age_sex else 0
        self.dropout = nn.Dropout(dropout)
        if hidden > 0:
            self.fc_hidden = nn.Linear(in_features + (extra if join_before == 2 else 0), hidden)
            last_in = hidden + (extra if join_before == 1 else 0)
        else:
            self.fc_hidden = None
            last_in = in_features + extra
        self.fc = nn.Linear(last_in, n_classes)

    def forward(self, features: torch.Tensor, age_sex: torch.Tensor | None = None) -> torch.Tensor:
        if self.use_age_sex:
            if age_sex is None or age_sex.shape != (features.shape[0], AGE_SEX_DIM):
                got = None if age_sex is None else tuple(age_sex.shape)
                raise ValueError(
                    f"model built with use_age_sex=True needs age_sex of shape [{features.shape[0]}, {AGE_SEX_DIM}],"
                    f" got {got}"
                )
            age_sex = age_sex.to(features.dtype)
        x = self.dropout(features)
        if self.fc_hidden is not None:
            if self.use_age_sex and self.join_before == 2:
                x = torch.cat([x, age_sex], dim=1)
            x = self.dropout(torch.relu(self.fc_hidden(x)))
        if self.use_age_sex and self.join_before == 1:
            x = torch.cat([x, age_sex], dim=1)
        return self.fc(x)
