"""One recurrent module for the study's LSTM and GRU families.

Each lead (T samples) is segmented into `steps` time steps of `features` samples ("50x100" = 50 features x
100 steps, for T = 5000). Then either one RNN reads all leads jointly (step input = leads x features; LSTM v1,
whose "1" segmentation is the raw 5000 x 8 sequence), or one RNN branch per lead reads that lead (LSTM v2,
GRU v1-v3), with weights shared across the branches or not. Attention over the steps can come after the RNN
(GRU v2.1, v3) or before it (v2.2); then, as in the study, each branch emits the attention weights concatenated
with the attended features and with the average- and max-pooled summaries of the RNN outputs. The branches'
outputs are concatenated into the FC head; GRU v3 joins age/sex before the last two FC layers.
"""
from __future__ import annotations

import torch
from torch import nn

from ecg.models.heads import Head
from ecg.segmentation import parse_segmentation
from ecg.models.registry import register_family

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}
ATTENTION = ("none", "after", "before")


class StepAttention(nn.Module):
    """Additive attention: one softmax weight per time step of `[N, S, D]` -> `[N, S]`."""

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.score(torch.tanh(self.proj(seq))).squeeze(-1), dim=1)


class RecurrentBranch(nn.Module):
    """One RNN (+ optional attention) over `[N, S, F]` -> `[N, out_features]`."""

    def __init__(self, cell: str, input_size: int, steps: int, *, hidden: int, layers: int, bidirectional: bool,
                 dropout: float, attention: str) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"recurrent cell {cell!r} unknown; valid cells: {', '.join(CELLS)}")
        if attention not in ATTENTION:
            raise ValueError(f"attention {attention!r} unknown; valid: {', '.join(ATTENTION)}")
        if hidden < 1 or layers < 1:
            raise ValueError(f"recurrent hidden ({hidden}) and layers ({layers}) must be >= 1")
        self.attention = attention
        self.directions = 2 if bidirectional else 1
        self.rnn = CELLS[cell](input_size, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if layers > 1 else 0.0)
        rnn_out = hidden * self.directions
        self.attend = None
        if attention == "after":
            self.attend = StepAttention(rnn_out)
        elif attention == "before":
            self.attend = StepAttention(input_size)
        # Without attention: the final hidden states; with it: weights + attended + mean + max.
        self.out_features = rnn_out if attention == "none" else steps + 3 * rnn_out

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        weights = None
        if self.attention == "before":
            weights = self.attend(seq)
            # Scale by the number of steps so that uniform weights leave the input unchanged.
            seq = seq * weights.unsqueeze(-1) * seq.shape[1]
        # The recurrent layer runs in fp32 outside autocast, on every device (docs/training.md, "On a GPU"): under
        # CUDA autocast, cuDNN's RNN runs in fp16 whatever dtype autocast was given, and training has no GradScaler
        # for fp16's range; under CPU autocast the LSTM runs in bf16.
        with torch.autocast(seq.device.type, enabled=False):
            out, state = self.rnn(seq.float())
        h_n = state[0] if isinstance(state, tuple) else state
        last = torch.cat(list(h_n[-self.directions:]), dim=1)
        if self.attention == "none":
            return last
        if self.attention == "after":
            weights = self.attend(out)
            attended = (weights.unsqueeze(-1) * out).sum(dim=1)
        else:
            attended = last
        return torch.cat([weights, attended, out.mean(dim=1), out.amax(dim=1)], dim=1)


class RecurrentBranches(nn.Module):
    """`n_branches` recurrent branches over `[B, N, S, F]` -> concatenated `[B, N * out_features]`.

    `shared=True` runs one branch over all N inputs (one weight set); otherwise each input has its own.
    """

    def __init__(self, cell: str, n_branches: int, input_size: int, steps: int, *, shared: bool, **branch) -> None:
        super().__init__()
        self.n_branches = n_branches
        self.shared = shared or n_branches == 1
        count = 1 if self.shared else n_branches
        self.branches = nn.ModuleList(RecurrentBranch(cell, input_size, steps, **branch) for _ in range(count))
        self.out_features = n_branches * self.branches[0].out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_branches, steps, features = x.shape
        if self.shared:
            out = self.branches[0](x.reshape(batch * n_branches, steps, features))
            return out.reshape(batch, -1)
        return torch.cat([branch(x[:, index]) for index, branch in enumerate(self.branches)], dim=1)


class RecurrentNet(nn.Module):
    """Segment leads -> recurrent branches (joint or one per lead) -> FC head."""

    def __init__(self, n_leads: int, n_classes: int, length: int, *, cell: str, per_lead: bool, attention: str,
                 segmentation: str, hidden: int, layers: int, bidirectional: bool, shared: bool, fc_hidden: int,
                 join_before: int, dropout: float, use_age_sex: bool, features: str = "none") -> None:
        super().__init__()
        self.features, self.steps = parse_segmentation(segmentation, length)
        self.length = length
        self.per_lead = per_lead
        n_branches, input_size = (n_leads, self.features) if per_lead else (1, n_leads * self.features)
        self.rnn = RecurrentBranches(cell, n_branches, input_size, self.steps, shared=shared, hidden=hidden,
                                     layers=layers, bidirectional=bidirectional, dropout=dropout, attention=attention)
        self.head = Head(self.rnn.out_features, n_classes, hidden=fc_hidden, use_age_sex=use_age_sex,
                         join_before=join_before, dropout=dropout, features=features, n_leads=n_leads)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        batch, leads, length = x.shape
        if length != self.length:
            raise ValueError(f"recurrent model built for length {self.length} got input of length {length}")
        segments = x.reshape(batch, leads, self.steps, self.features)
        if not self.per_lead:
            # One joint sequence: step s holds every lead's samples of segment s.
            segments = segments.permute(0, 2, 1, 3).reshape(batch, 1, self.steps, leads * self.features)
        return self.head(self.rnn(segments), extra)


_COMMON = {"segmentation": "50", "hidden": 64, "layers": 1, "bidirectional": False, "shared": False,
           "fc_hidden": 64}


@register_family(
    "lstm",
    {**_COMMON, "version": "v1", "bidirectional": True},
    versions={
        # v1: bidirectional LSTM over the raw sequence (one step per sample, all leads as its features), one FC.
        "v1": {"segmentation": "1", "bidirectional": True, "fc_hidden": 0},
        # v2: one LSTM per lead (weights not shared) over segmented leads, two FC layers.
        "v2": {"segmentation": "50", "shared": False, "fc_hidden": 64},
    },
)
def build_lstm(n_leads: int, n_classes: int, length: int, *, version: str, **options) -> RecurrentNet:
    """LSTM v1 (joint, raw) or v2 (per-lead branches)."""
    return RecurrentNet(n_leads, n_classes, length, cell="lstm", per_lead=version == "v2", attention="none",
                        join_before=1, **options)


# GRU versions: (attention, FC layers age/sex joins before).
_GRU_VERSIONS: dict[str, tuple[str, int]] = {"v1": ("none", 1), "v2.1": ("after", 1), "v2.2": ("before", 1),
                                             "v3": ("after", 2)}


@register_family("gru", {**_COMMON, "version": "v1"}, versions={version: {} for version in _GRU_VERSIONS})
def build_gru(n_leads: int, n_classes: int, length: int, *, version: str, fc_hidden: int, **options) -> RecurrentNet:
    """GRU v1 (per-lead branches), v2.1 (attention after), v2.2 (before), v3 (v2.1 + age/sex before last two FC)."""
    attention, join_before = _GRU_VERSIONS[version]
    if join_before == 2 and fc_hidden < 1:
        raise ValueError("GRU v3 joins age/sex before the last two FC layers, so it needs fc_hidden >= 1")
    return RecurrentNet(n_leads, n_classes, length, cell="gru", per_lead=True, attention=attention,
                        fc_hidden=fc_hidden, join_before=join_before, **options)
