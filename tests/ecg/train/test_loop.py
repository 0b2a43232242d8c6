"""fit: learning, reproducibility, resume, non-finite losses, early stopping, the epoch report."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from ecg.train import EpochReport, NonFiniteLossError, TrainConfig, fit, load_checkpoint, save_checkpoint

REPORTED = {"train_loss", "val_loss", "val_micro_f1", "val_macro_f1", "val_micro_precision", "val_micro_recall",
            "val_exact_match", "val_macro_auc", "lr", "epoch_time_s"}


def _without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in history]


def test_learns_well_above_the_prevalence_baseline(splits, tiny_model):
    train, val = splits
    reports: list[EpochReport] = []
    result = fit(tiny_model(), train, val, TrainConfig(lr=3e-3, epochs=8, batch_size=32, schedule="none"),
                 on_epoch=reports.append)
    # Predicting every label for every record gives micro-F1 = 2p / (1 + p) at prevalence p.
    p = val.labels.mean()
    baseline = 2 * p / (1 + p)
    assert baseline < 0.5
    assert result.best_metrics["val_micro_f1"] > 0.85
    assert result.best_metrics["val_micro_f1"] > result.history[0]["val_micro_f1"] + 0.1  # it learned
    assert result.best_metrics["val_macro_auc"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    # The report: 1-based epochs, every metric, is_best marks the running maximum.
    assert [r.epoch for r in reports] == list(range(1, 9))
    assert all(set(r.metrics) == REPORTED for r in reports)
    best_so_far = -1.0
    for r in reports:
        assert r.is_best == (r.metrics["val_micro_f1"] > best_so_far)
        best_so_far = max(best_so_far, r.metrics["val_micro_f1"])
    assert result.best_epoch == max(reports, key=lambda r: (r.metrics["val_micro_f1"], -r.epoch)).epoch


def test_model_is_left_with_the_best_weights(splits, tiny_model):
    train, val = splits
    model = tiny_model()
    result = fit(model, train, val, TrainConfig(lr=3e-3, epochs=3, batch_size=32, schedule="none"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, result.best_state[name])


def test_same_seed_same_metrics_different_seed_different(splits, tiny_model):
    train, val = splits
    config = TrainConfig(lr=2e-3, epochs=3, batch_size=32, seed=7)
    first = fit(tiny_model(), train, val, config)
    second = fit(tiny_model(), train, val, config)
    assert _without_time(first.history) == _without_time(second.history)
    for name in first.best_state:
        assert torch.equal(first.best_state[name], second.best_state[name])
    other = fit(tiny_model(), train, val, TrainConfig(lr=2e-3, epochs=3, batch_size=32, seed=8))
    assert _without_time(other.history) != _without_time(first.history)


@pytest.mark.parametrize("schedule, kept_as", [("plateau", "folder"), ("onecycle", "folder"), ("step", "dict")])
def test_resume_from_a_saved_checkpoint_equals_an_uninterrupted_run(splits, tiny_model, tmp_path, schedule,
                                                                    kept_as):
    train, val = splits
    config = TrainConfig(lr=3e-3, epochs=5, batch_size=48, schedule=schedule, step_milestones="3",
                         optimizer="adamw", weight_decay=1e-2, seed=3)
    kept = {}

    def keep_epoch_2(report: EpochReport) -> None:
        if report.epoch == 2:
            kept["state"] = report.state()  # a snapshot: later epochs must not change it
            save_checkpoint(kept["state"], tmp_path / "epoch2")

    full = fit(tiny_model(), train, val, config, on_epoch=keep_epoch_2)
    # A differently initialised model: everything must come from the checkpoint.
    resume = tmp_path / "epoch2" if kept_as == "folder" else kept["state"]
    resumed = fit(tiny_model(seed=99), train, val, config, resume=resume)
    assert _without_time(resumed.history) == _without_time(full.history)
    assert resumed.best_epoch == full.best_epoch
    for name in full.best_state:
        assert torch.equal(resumed.best_state[name], full.best_state[name]), name


def test_resume_refuses_a_different_configuration(splits, tiny_model):
    train, val = splits
    states = []
    config = TrainConfig(epochs=1, batch_size=64)
    fit(tiny_model(), train, val, config, on_epoch=lambda r: states.append(r.state()))
    with pytest.raises(ValueError, match="different lr"):
        fit(tiny_model(), train, val, TrainConfig(epochs=2, batch_size=64, lr=0.5), resume=states[0])
    # More epochs (retraining a winner for longer) is allowed.
    longer = fit(tiny_model(), train, val, TrainConfig(epochs=2, batch_size=64), resume=states[0])
    assert [h["epoch"] for h in longer.history] == [1, 2]


class NaNAfter(nn.Module):
    """Returns NaN logits from its `bad_call`-th forward call on."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 3)
        self.calls, self.bad_call = 0, bad_call

    def forward(self, x: torch.Tensor, age_sex: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        out = self.linear(x.mean(dim=2))
        return out * float("nan") if self.calls >= self.bad_call else out


def test_non_finite_loss_names_epoch_and_batch(splits):
    train, val = splits
    config = TrainConfig(epochs=3, batch_size=64)  # 6 training batches, 1 validation batch per epoch
    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 3 of 6"):
        fit(NaNAfter(bad_call=6 + 1 + 3), train, val, config)
    assert issubclass(NonFiniteLossError, FloatingPointError)


def test_exploding_learning_rate_ends_with_non_finite_loss(splits, tiny_model):
    train, val = splits
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, batch \d+"):
        fit(tiny_model(), train, val, TrainConfig(lr=1e30, epochs=5, batch_size=32, class_weights="none"))


def test_early_stopping_after_patience_epochs_without_improvement(splits, frozen_model):
    train, val = splits
    result = fit(frozen_model(), train, val, TrainConfig(epochs=20, patience=3, schedule="none"))
    assert result.best_epoch == 1
    assert result.epochs_run == 4 and result.stopped_early
    off = fit(frozen_model(), train, val, TrainConfig(epochs=6, patience=0, schedule="none"))
    assert off.epochs_run == 6 and not off.stopped_early


def test_state_is_lazy_and_only_valid_inside_the_callback(splits, tiny_model):
    train, val = splits
    reports: list[EpochReport] = []
    fit(tiny_model(), train, val, TrainConfig(epochs=2, batch_size=64), on_epoch=reports.append)
    with pytest.raises(RuntimeError, match="call it inside on_epoch"):
        reports[0].state()
    state = reports[1].state()  # the last epoch is still current
    assert state["meta"]["epoch"] == 2 and len(state["meta"]["history"]) == 2


def test_checkpoint_round_trip_with_weights_only(splits, tiny_model, tmp_path):
    train, val = splits
    saved = {}

    def keep(report: EpochReport) -> None:
        saved["state"] = report.state()
        save_checkpoint(saved["state"], tmp_path / "ckpt")

    fit(tiny_model(), train, val, TrainConfig(epochs=2, batch_size=64, schedule="step", step_milestones="1"),
        on_epoch=keep)
    raw = torch.load(tmp_path / "ckpt" / "training_state.pt", weights_only=True)
    assert set(raw) == {"optimizer", "scheduler"}
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded["meta"]["epoch"] == 2 and loaded["meta"]["config"]["schedule"] == "step"
    for name, tensor in saved["state"]["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    model = tiny_model(seed=5)
    model.load_state_dict(loaded["model"])
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        load_checkpoint(tmp_path)


def test_read_only_arrays_train_without_warnings(splits, tiny_model):
    train, val = (d.subset(np.arange(len(d))) for d in splits)
    for d in (train, val):
        d.signals.setflags(write=False)
        d.labels.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(tiny_model(), train, val, TrainConfig(epochs=1, batch_size=64))


def test_class_weight_kinds_change_the_loss(splits, tiny_model):
    train, val = splits
    losses = {kind: fit(tiny_model(), train, val, TrainConfig(epochs=1, batch_size=64, class_weights=kind))
              .history[0]["train_loss"] for kind in ("log", "pos_weight", "none")}
    assert len(set(losses.values())) == 3
    # 1/ln(n) weights are below 1 for classes of more than e records; pos_weight > 1 at prevalence 0.3.
    assert losses["log"] < losses["none"] < losses["pos_weight"]


def test_grad_clip_limits_the_update(splits, tiny_model):
    train, val = splits

    def moved(clip: float) -> float:
        model = tiny_model()
        before = [p.detach().clone() for p in model.parameters()]
        fit(model, train, val, TrainConfig(epochs=1, batch_size=64, grad_clip=clip, schedule="none"))
        return sum(float((p.detach() - b).abs().sum()) for p, b in zip(model.parameters(), before))

    # Adam normalises the step, so only a clip near its eps (1e-8) visibly shrinks the update.
    assert moved(1e-12) < 0.1 * moved(0.0)


def test_bf16_autocast_can_be_forced_on_cpu(splits, tiny_model):
    train, val = splits
    config = dict(epochs=1, batch_size=64, augment=False)
    fp32 = fit(tiny_model(), train, val, TrainConfig(**config)).history[0]
    bf16 = fit(tiny_model(), train, val, TrainConfig(bf16=True, **config)).history[0]
    assert np.isfinite(bf16["train_loss"]) and bf16["train_loss"] != fp32["train_loss"]
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=0.05)


def test_threads_setting_is_applied(splits, tiny_model):
    train, val = splits
    before = torch.get_num_threads()
    try:
        fit(tiny_model(), train, val, TrainConfig(epochs=1, batch_size=64, threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _denormal_survives() -> bool:
    # With flush-to-zero on, a denormal double reads back as 0 (torch.set_flush_denormal's own example).
    return bool(torch.tensor([1e-323], dtype=torch.float64)[0] != 0)


def test_flush_denormals_is_switched_on_by_fit_on_cpu_unless_turned_off(splits, tiny_model):
    train, val = splits
    try:
        torch.set_flush_denormal(False)
        fit(tiny_model(), train, val, TrainConfig(epochs=1, batch_size=64, flush_denormals=False))
        assert _denormal_survives()
        fit(tiny_model(), train, val, TrainConfig(epochs=1, batch_size=64))
        assert not _denormal_survives()
    finally:
        torch.set_flush_denormal(False)


def test_mismatched_splits_are_refused(splits, tiny_model):
    train, val = splits
    other = val.subset(np.arange(4))
    other.class_names = ["x", "y", "z"]
    with pytest.raises(ValueError, match="different class names"):
        fit(tiny_model(), train, other, TrainConfig(epochs=1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so asking for it is not an error")
def test_asking_for_cuda_without_it_is_a_clear_error(splits, tiny_model):
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit(tiny_model(), *splits, TrainConfig(epochs=1), device="cuda")
