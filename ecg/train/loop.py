"""`fit`: train one model on one split, report every epoch to a callback, keep the best epoch.

Read top to bottom: the split goes to the device once; each epoch draws a seeded permutation, slices
batches on the device, converts int16 to millivolts, augments, and steps; then the validation split is
scored with `ecg.metrics`. The caller (a Ray trial, the CLI, a test) decides via `on_epoch` what to report
and whether to save `report.state()`; `ecg` never knows who listens.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ecg.benchmark import task_scores
from ecg.data.augment import augment
from ecg.data.dataset import ECGDataset
from ecg.data.weights import class_weights
from ecg.metrics import evaluate
from ecg.selection import is_better
from ecg.train.checkpoint import load_checkpoint
from ecg.train.config import TrainConfig
from ecg.train.device import (DeviceSplit, autocast, bf16_enabled, enable_cudnn_autotune, resolve_device,
                              set_flush_denormals, set_threads)
from ecg.train.optim import make_loss, make_optimizer, make_schedule
from ecg.train.predict import infer_logits

EVAL_BATCH_SIZE = 256
# Settings a resumed run may change; any other difference would make it a different run.
RESUMABLE_CHANGES = {"epochs", "patience", "threads"}


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and batch."""


@dataclass
class EpochReport:
    """What `on_epoch` receives after each epoch. `state()` builds the checkpoint dict only when called,
    and only during the callback (the objects it reads move on with the next epoch)."""

    epoch: int
    metrics: dict[str, float]
    is_best: bool
    _build_state: Callable[[], dict[str, Any]] = field(repr=False)

    def state(self) -> dict[str, Any]:
        return self._build_state()


@dataclass
class FitResult:
    """The best epoch (1-based), its metrics, every epoch's metrics, and the best weights (CPU tensors).
    After `fit` returns, the model itself also holds the best weights."""

    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    best_state: dict[str, torch.Tensor]
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def loss_check_interval(device: torch.device) -> int:
    """Batches between host checks that the loss is finite. On CPU a check costs nothing, so every batch;
    on CUDA each check waits for the device, so the loss values stay on the GPU and are checked in blocks."""
    return 1 if device.type == "cpu" else 50


def _epoch_seed(seed: int, epoch: int) -> int:
    # One seed per epoch, so a run resumed at epoch k draws exactly what an uninterrupted one would,
    # without carrying generator state in the checkpoint.
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


def _check_splits(train: ECGDataset, val: ECGDataset) -> None:
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"training needs records in both splits (train {len(train)}, val {len(val)})")
    if list(train.class_names) != list(val.class_names):
        raise ValueError("train and val have different class names")
    if train.signals is None or val.signals is None:
        raise ValueError("training needs signals; a labels-only dataset was given")
    if train.signals.shape[1:] != val.signals.shape[1:]:
        raise ValueError(f"train signals {train.signals.shape[1:]} and val {val.signals.shape[1:]} differ in shape")


def _check_finite(losses: torch.Tensor, start: int, stop: int, epoch: int, steps: int, lr: float) -> None:
    """Raise NonFiniteLossError if a loss of batches [start, stop) is NaN or infinite (one host sync)."""
    finite = torch.isfinite(losses[start:stop])
    if not bool(finite.all()):
        batch = start + int((~finite).nonzero()[0]) + 1
        raise NonFiniteLossError(
            f"training loss became {losses[batch - 1].item()} at epoch {epoch}, batch {batch} of {steps} "
            f"(lr {lr:g}); lower the learning rate or enable grad_clip")


@dataclass
class _Progress:
    """What survives from epoch to epoch, and what a checkpoint must restore."""

    epoch: int = 0
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def fit(model: nn.Module, train: ECGDataset, val: ECGDataset, config: TrainConfig, *,
        on_epoch: Callable[[EpochReport], None] | None = None, device: str | torch.device = "cpu",
        resume: dict[str, Any] | str | Path | None = None) -> FitResult:
    """Train `model` on `train`, select the epoch with the best validation `config.metric`, return it.

    `resume` is a checkpoint dict (`report.state()`, `load_checkpoint(...)`) or its folder: training goes on
    from the epoch after it and ends exactly where an uninterrupted run would. Raises NonFiniteLossError when
    the loss stops being finite.
    """
    _check_splits(train, val)
    device = resolve_device(device)
    set_threads(config.threads)
    set_flush_denormals(device, config.flush_denormals)
    enable_cudnn_autotune(device)
    use_bf16 = bf16_enabled(device, config.bf16)

    model.to(device)
    train_split = DeviceSplit.from_dataset(train, device)
    val_split = DeviceSplit.from_dataset(val, device)
    weights = torch.as_tensor(class_weights(train.labels, config.class_weights), dtype=torch.float32, device=device)
    criterion = make_loss(config.class_weights, weights)
    optimizer = make_optimizer(model, config.lr, config.optimizer, config.weight_decay)
    # A trailing batch of one record is dropped: BatchNorm cannot normalise a single sample in training mode.
    n_train, batch_size = len(train_split), config.batch_size
    steps = max(1, n_train // batch_size + (n_train % batch_size > 1))
    batch_sizes = torch.tensor([min(batch_size, n_train - i * batch_size) for i in range(steps)],
                               dtype=torch.float32, device=device)  # weights of each batch's mean loss
    schedule = make_schedule(optimizer, config, steps)
    progress = _Progress()
    if resume is not None:
        progress = _restore(resume, model, optimizer, schedule, config, device)

    generator = torch.Generator(device=device)
    check_every = loss_check_interval(device)
    stopped_early = False

    def build_state(at_epoch: int) -> dict[str, Any]:
        if at_epoch != progress.epoch:
            raise RuntimeError(f"state() of epoch {at_epoch} requested after epoch {progress.epoch}; "
                               "call it inside on_epoch")
        model_weights = model.state_dict()
        best = None if progress.best_epoch == progress.epoch else progress.best_weights
        return {
            "model": {k: v.detach().cpu().clone() for k, v in model_weights.items()},
            "best_model": None if best is None else {k: v.cpu() for k, v in best.items()},
            "optimizer": _cpu_copy(optimizer.state_dict()),  # a snapshot: training goes on mutating the live one
            "scheduler": schedule.state_dict(),
            "meta": {"epoch": progress.epoch, "best_epoch": progress.best_epoch,
                     "best_metrics": dict(progress.best_metrics), "history": list(progress.history),
                     "config": config.to_dict()},
        }

    for epoch in range(progress.epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        generator.manual_seed(_epoch_seed(config.seed, epoch))
        torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout and other global-RNG layers

        # --- one pass over the training split, batches sliced and augmented on the device
        model.train()
        order = torch.randperm(n_train, generator=generator, device=device)
        losses = torch.zeros(steps, device=device)
        checked = 0
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            losses[step] = _train_step(model, optimizer, criterion, train_split, index, config, generator, use_bf16)
            schedule.after_batch()
            if (step + 1) % check_every == 0 or step + 1 == steps:
                _check_finite(losses, checked, step + 1, epoch, steps, lr)
                checked = step + 1
        train_loss = float((losses * batch_sizes).sum() / batch_sizes.sum())

        # --- validation: loss and metrics at threshold 0.5
        val_logits = infer_logits(model, val_split, batch_size=max(EVAL_BATCH_SIZE, batch_size), bf16=use_bf16)
        val_loss = float(criterion(val_logits, val_split.labels))
        if not np.isfinite(val_loss):
            raise NonFiniteLossError(f"validation loss became {val_loss} at epoch {epoch}")
        val_probs = torch.sigmoid(val_logits).cpu().numpy()
        scores = evaluate(val.labels, val_probs)
        metrics = {"train_loss": train_loss, "val_loss": val_loss}
        metrics.update({f"val_{k}": v for k, v in scores.items() if k in _REPORTED})
        # and what a benchmark defines for its own classes only: val_challenge_score on CinC 2021's
        metrics.update({f"val_{k}": v for k, v in task_scores(val.labels, val_probs, val.class_names).items()})
        metrics["lr"] = lr
        if config.metric not in metrics:
            raise ValueError(f"the selection metric {config.metric!r} is not among the validation metrics "
                             f"({', '.join(sorted(metrics))})")
        schedule.after_epoch(metrics[config.metric])
        metrics["epoch_time_s"] = time.perf_counter() - started

        progress.epoch = epoch
        progress.history.append({"epoch": epoch, **metrics})
        is_best = progress.best_epoch == 0 or is_better(metrics[config.metric], progress.best_metrics[config.metric],
                                                        config.metric)
        if is_best:
            progress.best_epoch, progress.best_metrics = epoch, dict(metrics)
            progress.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            on_epoch(EpochReport(epoch, dict(metrics), is_best, lambda e=epoch: build_state(e)))
        if config.patience and epoch - progress.best_epoch >= config.patience:
            stopped_early = True
            break

    if progress.best_epoch == 0:
        raise ValueError(f"nothing to train: the checkpoint is at epoch {progress.epoch} and epochs={config.epochs}")
    model.load_state_dict(progress.best_weights)
    return FitResult(
        best_epoch=progress.best_epoch,
        best_metrics=progress.best_metrics,
        history=progress.history,
        best_state={k: v.detach().cpu().clone() for k, v in progress.best_weights.items()},
        stopped_early=stopped_early,
    )


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, criterion: nn.Module, split: DeviceSplit,
                index: torch.Tensor, config: TrainConfig, generator: torch.Generator, bf16: bool) -> torch.Tensor:
    """One optimiser step on the records at `index`; returns the detached loss.

    A function of its own so that the batch, the logits and their autograd graph die on return. As loop
    variables they would live on through the next batch's forward pass, and on CPU that alone cost the GRU
    ~15% of its speed (the allocator can no longer reuse the same blocks; bench/bench_train.py measures it).
    """
    x, extra, y = split.batch(index)
    if config.augment:
        x = augment(x, generator)
    with autocast(split.signals.device, bf16):
        logits = model(x, extra)
    loss = criterion(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach()


def _cpu_copy(value: Any) -> Any:
    """`value` with every tensor inside (nested dicts and lists) replaced by a CPU copy."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value


_REPORTED = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "exact_match", "macro_auc")


def _restore(resume: dict[str, Any] | str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             schedule: Any, config: TrainConfig, device: torch.device) -> _Progress:
    """Load a checkpoint into the model, optimiser and schedule; the progress it records."""
    state = resume if isinstance(resume, dict) else load_checkpoint(resume)
    meta = state["meta"]
    saved = meta.get("config", {})
    current = config.to_dict()
    changed = [f.name for f in fields(TrainConfig)
               if f.name in saved and f.name not in RESUMABLE_CHANGES and saved[f.name] != current[f.name]]
    if config.schedule == "onecycle" and saved.get("epochs") != config.epochs:
        changed.append("epochs (the one-cycle schedule spans the whole run)")
    if changed:
        raise ValueError(f"cannot resume: the checkpoint was trained with different {', '.join(changed)}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["scheduler"])
    best = state.get("best_model") or state["model"]
    return _Progress(
        epoch=int(meta["epoch"]),
        best_epoch=int(meta["best_epoch"]),
        best_metrics=dict(meta["best_metrics"]),
        best_weights={k: v.to(device).clone() for k, v in best.items()},
        history=[dict(h) for h in meta["history"]],
    )
