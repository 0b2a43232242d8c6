"""The study's named model variants: a family and the options that make it (timm-style named configs)."""
from __future__ import annotations

from typing import Any

from torch import nn

from ecg.models.registry import create_model

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet50": ("resnet", {"depth": 50}),
    "resnet101": ("resnet", {"depth": 101}),
    "resnext50_2x64d": ("resnext", {"depth": 50, "cardinality": 2, "base_width": 64}),
    "resnext101_4x64d": ("resnext", {"depth": 101, "cardinality": 4, "base_width": 64}),
    "seresnet50": ("seresnet", {"depth": 50, "se_reduction": 16}),
    "seresnet101": ("seresnet", {"depth": 101, "se_reduction": 16}),
    "ecgnet_v1": ("ecgnet", {"version": "v1"}),
    "ecgnet_v2": ("ecgnet", {"version": "v2", "kernels": "3,5,7"}),
    "ecgnet_v3": ("ecgnet", {"version": "v3", "kernels": "3,5,7"}),
    "lstm_v1": ("lstm", {"version": "v1"}),
    "lstm_v2": ("lstm", {"version": "v2", "segmentation": "50x100"}),
    "gru_v1": ("gru", {"version": "v1", "segmentation": "50x100", "shared": False}),
    "gru_v1_shared": ("gru", {"version": "v1", "segmentation": "50x100", "shared": True}),
    "gru_v2.1": ("gru", {"version": "v2.1", "segmentation": "50x100"}),
    "gru_v2.2": ("gru", {"version": "v2.2", "segmentation": "50x100"}),
    "gru_v3_500x10": ("gru", {"version": "v3", "segmentation": "500x10", "use_age_sex": True}),
    "gru_v3_100x50": ("gru", {"version": "v3", "segmentation": "100x50", "use_age_sex": True}),
    "gru_v3_50x100": ("gru", {"version": "v3", "segmentation": "50x100", "use_age_sex": True}),
    "hybrid_1to1": ("hybrid", {"connection": "1to1"}),
    "hybrid_8to8": ("hybrid", {"connection": "8to8"}),
    "hybrid_1to8": ("hybrid", {"connection": "1to8"}),
}


def create_variant(name: str, n_leads: int, n_classes: int, length: int, **overrides: Any) -> nn.Module:
    """Build the named study variant (`overrides` change its options); ValueError lists the known names."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model variant {name!r}; valid variants: {', '.join(VARIANTS)}")
    family, options = VARIANTS[name]
    return create_model(family, n_leads, n_classes, length, **{**options, **overrides})
