"""The classifier head shared by every family: fully connected layers, with age/sex and the hand-made features
joining as age and sex do in the study."""
from __future__ import annotations

import torch
from torch import nn

from ecg.data.dataset import AGE_SEX_DIM
from ecg.features.layout import extra_columns, input_width


class Head(nn.Module):
    """Features `[B, F]` (+ per-record inputs `[B, E]`) -> logits `[B, n_classes]`.

    `hidden` = 0 gives one FC layer; > 0 gives FC(hidden) -> ReLU -> dropout -> FC(n_classes).
    The per-record inputs are the columns of `ECGDataset.extra_inputs()` that `use_age_sex` and `features`
    (`ecg.features.layout`: none, stats, clinical, both; `n_leads` sizes the statistics) pick; they are
    concatenated to the input of the last FC layer (`join_before=1`, the study's default) or of the last two
    (`join_before=2`, the study's GRU v3).
    """

    def __init__(self, in_features: int, n_classes: int, *, hidden: int = 0, use_age_sex: bool = False,
                 join_before: int = 1, dropout: float = 0.0, features: str = "none", n_leads: int = 0) -> None:
        super().__init__()
        if join_before not in (1, 2) or (join_before == 2 and hidden <= 0):
            raise ValueError(
                f"age/sex can join before the last 1 or 2 FC layers; got {join_before} with hidden={hidden}"
            )
        self.use_age_sex, self.features = use_age_sex, features
        self.join_before = join_before
        columns = extra_columns(use_age_sex, features, n_leads)
        # Not saved with the weights: the columns follow from the options, and older checkpoints have none.
        self.register_buffer("extra_index", torch.tensor(columns, dtype=torch.long), persistent=False)
        self.joins_extra = bool(columns)
        # Features need the whole vector of their lead count; age/sex alone need its first four columns.
        self.extra_width = input_width(n_leads) if features != "none" else AGE_SEX_DIM
        extra = len(columns)
        self.dropout = nn.Dropout(dropout)
        if hidden > 0:
            self.fc_hidden = nn.Linear(in_features + (extra if join_before == 2 else 0), hidden)
            last_in = hidden + (extra if join_before == 1 else 0)
        else:
            self.fc_hidden = None
            last_in = in_features + extra
        self.fc = nn.Linear(last_in, n_classes)

    def _check(self, extra: torch.Tensor | None, batch: int) -> None:
        got = None if extra is None else tuple(extra.shape)
        if self.features == "none":
            if extra is None or extra.ndim != 2 or extra.shape[0] != batch or extra.shape[1] < AGE_SEX_DIM:
                raise ValueError(f"model built with use_age_sex=True needs age_sex of shape [{batch}, {AGE_SEX_DIM}]"
                                 f" (or wider: attached features follow), got {got}")
        elif extra is None or tuple(extra.shape) != (batch, self.extra_width):
            raise ValueError(f"model built with features={self.features!r} needs per-record inputs of shape "
                             f"[{batch}, {self.extra_width}] (age/sex and the features ecg.features.attach_features "
                             f"joins to the records), got {got}")

    def forward(self, features: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if self.joins_extra:
            self._check(extra, features.shape[0])
            extra = extra.index_select(1, self.extra_index).to(features.dtype)
        x = self.dropout(features)
        if self.fc_hidden is not None:
            if self.joins_extra and self.join_before == 2:
                x = torch.cat([x, extra], dim=1)
            x = self.dropout(torch.relu(self.fc_hidden(x)))
        if self.joins_extra and self.join_before == 1:
            x = torch.cat([x, extra], dim=1)
        return self.fc(x)
