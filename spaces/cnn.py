"""Spaces of the convolutional families: ECGNet (v1, v2, v3) and the bottleneck ResNet family
(ResNet, ResNeXt, SE-ResNet). On CPU the widths, depths and block counts are smaller."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type hints only: launch.py imports spaces to name them, without optuna's import time
    import optuna

from spaces.common import suggest_common_model, suggest_optim
from spaces.context import SpaceContext


def ecgnet(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """ECGNet: version, stem kernel (long, about 50 at 500 Hz), kernel or kernel set, widths, blocks, SE."""
    version = trial.suggest_categorical("model/version", ["v1", "v2", "v3"])
    # The stem is a full-resolution 2D conv, the costliest layer: about 50 samples at 500 Hz in the study,
    # half as many at the CPU default of 250 Hz (the same 0.1 s).
    if ctx.gpu:
        trial.suggest_int("model/stem_kernel", 15, 75, step=10)
    else:
        trial.suggest_int("model/stem_kernel", 9, 29, step=4)
    if version == "v1":
        trial.suggest_categorical("model/kernel", [3, 5, 7, 9])
    else:
        trial.suggest_categorical("model/kernels", ctx.sizes(cpu=["3,5", "3,7", "5,9"],
                                                             gpu=["3,5,7", "5,7,9", "3,7,11", "3,5,7,9"]))
    trial.suggest_categorical("model/width", ctx.sizes(cpu=[4, 8], gpu=[16, 32, 64]))
    trial.suggest_categorical("model/width_1d", ctx.sizes(cpu=[16, 32], gpu=[64, 128, 256]))
    # Each 1D block may downsample once, so a version needs at least as many 1D blocks as it downsamples
    # (3 times in v1/v2, 4 in v3, the model's presets); v3 stacks fewer blocks than v1/v2 (the study).
    downsamples = 4 if version == "v3" else 3
    if ctx.gpu:
        trial.suggest_int("model/blocks_2d", 1, 3)
        trial.suggest_int("model/blocks_1d", downsamples, 6 if version == "v3" else 8)
    else:
        trial.suggest_int("model/blocks_2d", 1, 1)
        trial.suggest_int("model/blocks_1d", downsamples, downsamples + 1)
    trial.suggest_categorical("model/se_reduction", [4, 8, 16])
    suggest_common_model(trial, ctx)
    return {"family": "ecgnet", **suggest_optim(trial, ctx)}


def _resnet_body(trial: optuna.Trial, ctx: SpaceContext) -> None:
    trial.suggest_categorical("model/depth", ctx.sizes(cpu=[14, 26], gpu=[26, 50, 101]))
    trial.suggest_categorical("model/width", ctx.sizes(cpu=[8, 16], gpu=[16, 32, 64]))
    trial.suggest_int("model/stem_kernel", 7, 31, step=4)
    trial.suggest_int("model/block_kernel", 3, 11, step=2)
    suggest_common_model(trial, ctx)


def resnet(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """ResNet-1d: depth, width, stem and block kernels (the study enlarged them to about 10)."""
    _resnet_body(trial, ctx)
    return {"family": "resnet", **suggest_optim(trial, ctx)}


def resnext(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """ResNeXt-1d: the ResNet body plus cardinality (groups) and base width per group."""
    _resnet_body(trial, ctx)
    trial.suggest_categorical("model/cardinality", ctx.sizes(cpu=[2, 4], gpu=[2, 4, 8]))
    trial.suggest_categorical("model/base_width", ctx.sizes(cpu=[16, 32], gpu=[32, 64]))
    return {"family": "resnext", **suggest_optim(trial, ctx)}


def seresnet(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """SE-ResNet-1d: the ResNet body plus the squeeze-excitation reduction ratio."""
    _resnet_body(trial, ctx)
    trial.suggest_categorical("model/se_reduction", [4, 8, 16])
    return {"family": "seresnet", **suggest_optim(trial, ctx)}
