"""Every architecture family of the study behind one registry.

    model = create_model("gru", n_leads=8, n_classes=34, length=5000, version="v3", segmentation="50x100",
                         use_age_sex=True)
    logits = model(x, age_sex)          # x [B, 8, 5000] in mV, age_sex [B, 4] -> [B, 34]

`list_models()` names the families, `model_options(family)` gives their options and defaults, `VARIANTS` /
`create_variant(name, ...)` the study's named variants.
"""
from __future__ import annotations

# Importing the family modules registers them (in this order: the order list_models() reports).
from ecg.models import resnet as _resnet  # noqa: F401
from ecg.models import ecgnet as _ecgnet  # noqa: F401
from ecg.models import recurrent as _recurrent  # noqa: F401
from ecg.models import hybrid as _hybrid  # noqa: F401
from ecg.models.registry import create_model, list_models, model_options, resolve_options
from ecg.models.variants import VARIANTS, create_variant

__all__ = ["VARIANTS", "create_model", "create_variant", "list_models", "model_options", "resolve_options"]
