"""Spaces of the recurrent families (LSTM, GRU) and the SE-ResNet + GRU hybrid.

Segmentation ("FxS": F samples per step, S steps) is drawn from the factorisations of the signal length:
with steps in 10..100 at 5,000 samples that is 500x10, 250x20, 200x25, 125x40, 100x50 and 50x100 (the study's
three among them), less those whose steps do not divide the length at every input rate (40 steps at 250 Hz);
on CPU steps stay in 10..50 and hidden sizes small. The segmentation is drawn at the records' rate and scaled
to the trial's `data/fs` (`spaces.rate`). LSTM v1's raw 5,000-step sequence
("1") is not searched: it takes hours per epoch and the study found it worst; `ecg.train` can still train it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type hints only: launch.py imports spaces to name them, without optuna's import time
    import optuna

from spaces.common import segmentations, suggest_common_model, suggest_optim
from spaces.context import SpaceContext


def _rnn(trial: optuna.Trial, ctx: SpaceContext) -> None:
    max_steps = 100 if ctx.gpu else 50
    trial.suggest_categorical("model/segmentation", segmentations(ctx.length, min_steps=10, max_steps=max_steps,
                                                                   also_divide=ctx.lengths))
    trial.suggest_categorical("model/hidden", ctx.sizes(cpu=[16, 32], gpu=[32, 64, 128, 256]))
    trial.suggest_int("model/layers", 1, 2 if ctx.gpu else 1)
    trial.suggest_categorical("model/bidirectional", [False, True])
    trial.suggest_categorical("model/fc_hidden", ctx.sizes(cpu=[32, 64], gpu=[64, 128, 256]))


def lstm(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """LSTM v1 (one joint sequence of all leads) or v2 (one branch per lead, shared or separate weights)."""
    version = trial.suggest_categorical("model/version", ["v1", "v2"])
    _rnn(trial, ctx)
    if version == "v2":
        trial.suggest_categorical("model/shared", [False, True])
    suggest_common_model(trial, ctx)
    return {"family": "lstm", **suggest_optim(trial, ctx)}


def gru(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """GRU v1 (per-lead branches), v2.1/v2.2 (attention after/before the GRU), v3 (v2.1 with age and sex
    joining before the last two FC layers: always on, that is what v3 is); shared or per-lead weights."""
    version = trial.suggest_categorical("model/version", ["v1", "v2.1", "v2.2", "v3"])
    _rnn(trial, ctx)
    trial.suggest_categorical("model/shared", [False, True])
    suggest_common_model(trial, ctx, age_sex=version != "v3")
    constants = {"model/use_age_sex": True} if version == "v3" else {}
    return {"family": "gru", **constants, **suggest_optim(trial, ctx)}


def hybrid(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """SE-ResNet feeding GRU branches, connected one of the study's three ways (1to1, 8to8, 1to8).

    Every sampled `seq_len` is a multiple of 8 x 8 and every `step_features` divides 8, so each connection
    splits the pooled sequence into whole steps: no invalid combination can be drawn.
    """
    trial.suggest_categorical("model/connection", ["1to1", "8to8", "1to8"])
    trial.suggest_categorical("model/depth", ctx.sizes(cpu=[14], gpu=[14, 26, 50]))
    trial.suggest_categorical("model/width", ctx.sizes(cpu=[8, 16], gpu=[16, 32, 64]))
    trial.suggest_categorical("model/se_reduction", [4, 8, 16])
    trial.suggest_int("model/stem_kernel", 7, 31, step=4)
    trial.suggest_int("model/block_kernel", 3, 11, step=2)
    trial.suggest_categorical("model/seq_len", ctx.sizes(cpu=[64], gpu=[64, 128, 192]))
    trial.suggest_categorical("model/step_features", [2, 4, 8])
    trial.suggest_categorical("model/hidden", ctx.sizes(cpu=[16, 32], gpu=[32, 64, 128, 256]))
    trial.suggest_categorical("model/bidirectional", [False, True])
    trial.suggest_categorical("model/shared", [False, True])
    trial.suggest_categorical("model/fc_hidden", ctx.sizes(cpu=[32, 64], gpu=[64, 128, 256]))
    suggest_common_model(trial, ctx)
    return {"family": "hybrid", **suggest_optim(trial, ctx)}


