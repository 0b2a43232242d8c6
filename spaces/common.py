"""Parameters every family samples: training settings (`optim/...`) and the common model options."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type hints only: launch.py imports spaces to name them, without optuna's import time
    import optuna

from ecg.segmentation import format_segmentation
from spaces.context import SpaceContext

SCHEDULES = ["plateau", "cosine", "onecycle", "step", "none"]


def suggest_optim(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
    """Learning rate (log scale), optimiser, weight decay (log), batch size, schedule, class weights.

    Returns the constants of a search trial: the epoch budget (ASHA stops trials earlier, so `fit`'s own
    early stopping is off), the step schedule's milestones at 1/2 and 3/4 of the budget, the seed and the
    selection metric.
    """
    trial.suggest_float("optim/lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("optim/optimizer", ["adam", "adamw"])
    trial.suggest_float("optim/weight_decay", 1e-6, 1e-2, log=True)
    trial.suggest_categorical("optim/batch_size", ctx.sizes(cpu=[16, 32, 64], gpu=[32, 64, 128, 256]))
    trial.suggest_categorical("optim/schedule", SCHEDULES)
    trial.suggest_categorical("optim/class_weights", ["log", "pos_weight", "none"])
    half, three_quarters = max(1, ctx.max_epochs // 2), max(2, 3 * ctx.max_epochs // 4)
    if three_quarters <= half:
        three_quarters = half + 1
    return {
        "optim/epochs": ctx.max_epochs,
        "optim/patience": 0,
        "optim/step_milestones": f"{half},{three_quarters}",
        "optim/seed": ctx.seed,
        "optim/metric": ctx.metric,
    }


def suggest_common_model(trial: optuna.Trial, ctx: SpaceContext, *, age_sex: bool = True) -> None:
    """Dropout, whether age and sex join the classifier (the study's "Basic" variant has them off), and which
    hand-made features join them (`ecg.features`: none, stats, clinical, both; the study's first proposed
    improvement).

    `age_sex=False` leaves use_age_sex to the caller (a version that always uses them).
    """
    trial.suggest_float("model/dropout", 0.0, 0.5)
    if age_sex:
        trial.suggest_categorical("model/use_age_sex", [False, True])
    from ecg.features.layout import FEATURE_SETS  # here: importing spaces (launch.py --help) stays cheap

    trial.suggest_categorical("model/features", list(FEATURE_SETS))


def segmentations(length: int, *, min_steps: int, max_steps: int, also_divide: Sequence[int] = ()) -> list[str]:
    """Factorisations `features x steps` of `length` with `min_steps <= steps <= max_steps`, as "FxS" strings,
    keeping only step counts that also divide every length of `also_divide` (the length at each input rate,
    so that the segmentation scales to every rate: `spaces.rate`).

    At 5,000 samples and steps in [10, 100] these include the study's 500x10, 100x50 and 50x100.
    """
    found = [format_segmentation(length // steps, steps) for steps in range(min_steps, max_steps + 1)
             if length % steps == 0 and all(other % steps == 0 for other in also_divide)]
    if not found:
        raise ValueError(f"a length of {length} has no factorisation with {min_steps}..{max_steps} steps")
    return found
