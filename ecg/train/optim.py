"""The pieces a TrainConfig names: optimiser, learning-rate schedule and loss, each chosen from a registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ecg.selection import metric_mode

# The study's ReduceLROnPlateau settings (it watched validation micro-F1; here: the selection metric).
PLATEAU_FACTOR = 0.1
PLATEAU_PATIENCE = 10
PLATEAU_MIN_LR = 1e-8
STEP_GAMMA = 0.1

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(model: nn.Module, lr: float, kind: str, weight_decay: float) -> torch.optim.Optimizer:
    """Adam (weight decay as L2 in the gradient) or AdamW (decoupled weight decay)."""
    return OPTIMIZERS[kind](model.parameters(), lr=lr, weight_decay=weight_decay)


@dataclass
class Schedule:
    """A torch LR scheduler and when it steps: after every batch (one-cycle), or after every epoch, on the
    selection metric (plateau) or unconditionally (step, cosine). `scheduler` None keeps the rate constant."""

    scheduler: Any = None
    per_batch: bool = False
    on_metric: bool = False

    def after_batch(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def after_epoch(self, value: float) -> None:
        if self.scheduler is None or self.per_batch:
            return
        if self.on_metric:
            self.scheduler.step(value)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


ScheduleBuilder = Callable[[torch.optim.Optimizer, Any, int], Schedule]


def _plateau(optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int) -> Schedule:
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=metric_mode(config.metric), factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE, min_lr=PLATEAU_MIN_LR)
    return Schedule(scheduler, on_metric=True)


def _step(optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.MultiStepLR(optimizer, config.milestones(), gamma=STEP_GAMMA))


def _cosine(optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs))


def _onecycle(optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int) -> Schedule:
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch)
    return Schedule(scheduler, per_batch=True)


def _constant(optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int) -> Schedule:
    return Schedule(None)


SCHEDULES: dict[str, ScheduleBuilder] = {
    "plateau": _plateau, "step": _step, "cosine": _cosine, "onecycle": _onecycle, "none": _constant}


def make_schedule(optimizer: torch.optim.Optimizer, config: Any, steps_per_epoch: int) -> Schedule:
    """The schedule `config.schedule` names, for `config.epochs` epochs of `steps_per_epoch` batches."""
    return SCHEDULES[config.schedule](optimizer, config, steps_per_epoch)


# How class weights enter BCE-with-logits: the study's 1/ln(n) weights scale each class's loss term;
# pos_weight weights the positive term of each class; none uses neither.
LOSS_WEIGHT_ARGUMENT: dict[str, str | None] = {"log": "weight", "pos_weight": "pos_weight", "none": None}


def make_loss(kind: str, weights: torch.Tensor) -> nn.BCEWithLogitsLoss:
    """BCE-with-logits with per-class `weights` [C] used as `kind` says."""
    argument = LOSS_WEIGHT_ARGUMENT[kind]
    return nn.BCEWithLogitsLoss(**({} if argument is None else {argument: weights}))
