"""The input rate as a hyperparameter: every space samples `data/fs`, and the options counted in input
samples are scaled to it, so that a sampled value means the same duration at every rate.

The space draws every option at the records' rate (`SpaceContext.fs`, the highest `data/fs`) and the study
keeps those draws, so TPE compares a 0.1 s stem kernel at 100 Hz with one at 250 Hz as the same value. The
trial's config holds the values its model is built with at `data/fs` (what trials.csv and best_configs.csv
show and `python -m ecg.train` rebuilds):
- `model/segmentation` "FxS" keeps its S steps and scales F: 500x10 at 500 Hz is 100x10 at 100 Hz (only step
  counts that divide the length at every rate are drawn, `SpaceContext.lengths`);
- `model/stem_kernel`, the first convolution over the raw signal, scales to the nearest odd size (>= 3).
Kernels of later blocks (`kernel`, `kernels`, `block_kernel`) act on feature maps and stay as drawn: at a
lower rate they span more time, which is part of what a lower rate trades. See docs/search.md, "Input rate".
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type hints only: launch.py imports spaces to name them, without optuna's import time
    import optuna

from ecg.flat_config import FS_KEY
from ecg.segmentation import format_segmentation, split_segmentation
from spaces.context import SpaceContext

MIN_KERNEL = 3


def suggest_rate(trial: optuna.Trial, ctx: SpaceContext) -> int:
    """The trial's input rate, one of `ctx.rates`."""
    return int(trial.suggest_categorical(FS_KEY, ctx.rates))


def scale_kernel(kernel: int, ratio: float) -> int:
    """A kernel of `kernel` samples at one rate as the nearest odd kernel at `ratio` times that rate."""
    return max(MIN_KERNEL, 2 * math.floor((kernel * ratio - 1) / 2 + 0.5) + 1)


def scale_segmentation(segmentation: str, ratio: float) -> str:
    """"FxS" with F scaled by `ratio` (F x ratio must be whole: the space draws only such S)."""
    features, steps = split_segmentation(segmentation)
    scaled = features * ratio
    if steps is None or scaled != int(scaled):
        raise ValueError(f"segmentation {segmentation!r} cannot be scaled by {ratio:g}")
    return format_segmentation(int(scaled), steps)


_SCALERS = {"model/stem_kernel": scale_kernel, "model/segmentation": scale_segmentation}
SCALED_OPTIONS = tuple(_SCALERS)  # the config names whose values are scaled to the trial's rate


def built_at(name: str, drawn: Any, fs: float, ctx: SpaceContext) -> Any:
    """Option `name` drawn as `drawn` (at `ctx.fs`) as a model at `fs` Hz is built with it."""
    scale = _SCALERS.get(name)
    return drawn if scale is None or fs == ctx.fs else scale(drawn, fs / ctx.fs)


def at_rate(config: dict[str, Any], ctx: SpaceContext) -> dict[str, Any]:
    """`config` (drawn at `ctx.fs`) with its sample counts scaled to its `data/fs` (see the module docstring)."""
    ratio = config[FS_KEY] / ctx.fs
    if ratio == 1:
        return config
    return {**config, **{name: scale(config[name], ratio) for name, scale in _SCALERS.items() if name in config}}
