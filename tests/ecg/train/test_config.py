"""TrainConfig validation, and TrialConfig's flat form and CSV rows."""
from __future__ import annotations

import pandas as pd
import pytest

from ecg.train import TrainConfig, TrialConfig


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=0), "lr must be a positive number"),
    (dict(lr=float("nan")), "lr must be a finite number, got 'nan'"),
    (dict(optimizer="sgd"), "optimizer must be one of adam, adamw; got 'sgd'"),
    (dict(schedule="linear"), "schedule must be one of plateau, step, cosine, onecycle, none"),
    (dict(class_weights="inverse"), "class_weights must be one of log, pos_weight, none"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(patience=-1), "patience must be >= 0"),
    (dict(grad_clip=-1.0), "grad_clip must be >= 0"),
    (dict(weight_decay=-0.1), "weight_decay must be >= 0"),
    (dict(threads=0), "threads must be >= 1 or None"),
    (dict(step_milestones="30;60"), "step_milestones must be comma-separated"),
    (dict(step_milestones="60,30"), "distinct ascending"),
    (dict(batch_size=2.5), "batch_size must be an integer"),
    (dict(augment="maybe"), "augment must be true or false"),
])
def test_invalid_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        TrainConfig(**kwargs)


def test_values_are_coerced_to_their_types():
    config = TrainConfig(lr="0.01", batch_size="32", augment="False", bf16="", threads=2.0, step_milestones="")
    assert config.lr == 0.01 and config.batch_size == 32 and config.augment is False
    assert config.bf16 is None and config.threads == 2 and config.milestones() == []
    assert TrainConfig(step_milestones=" 5, 10").milestones() == [5, 10]


def test_flat_round_trip():
    trial = TrialConfig("ecgnet", {"version": "v3", "kernels": "3,5,7", "dropout": 0.2, "use_age_sex": True},
                        TrainConfig(lr=1e-4, schedule="step", bf16=False))
    flat = trial.to_flat()
    assert flat["family"] == "ecgnet" and flat["model/kernels"] == "3,5,7" and flat["optim/lr"] == 1e-4
    assert TrialConfig.from_flat(flat, option_defaults={}) == trial


def test_a_best_configs_row_comes_back_with_its_types(tmp_path):
    rows = [
        TrialConfig("gru", {"hidden": 64, "layers": 2, "use_age_sex": True}, TrainConfig(lr=3e-4)).to_flat(),
        TrialConfig("ecgnet", {"version": "v2", "dropout": 0.1}, TrainConfig(lr=1e-3, patience=5)).to_flat(),
    ]
    table = pd.DataFrame(rows)
    table.insert(0, "trial_id", ["a1", "b2"])
    table["val_micro_f1"] = [0.8, 0.7]
    path = tmp_path / "best_configs.csv"
    table.to_csv(path, index=False)
    defaults = {"hidden": 128, "layers": 1, "use_age_sex": False, "dropout": 0.0}
    row0 = TrialConfig.from_flat(pd.read_csv(path).iloc[0].to_dict(), option_defaults=defaults)
    # The CSV has gaps (ecgnet has no hidden size), so pandas reads 64 back as 64.0; the default's type fixes it.
    assert row0.model == {"hidden": 64, "layers": 2, "use_age_sex": True}
    assert type(row0.model["hidden"]) is int and row0.optim == TrainConfig(lr=3e-4)
    row1 = TrialConfig.from_csv(path, row=1)
    assert row1.family == "ecgnet" and row1.model["version"] == "v2" and row1.optim.patience == 5
    with pytest.raises(ValueError, match="row 2 does not exist"):
        TrialConfig.from_csv(path, row=2)


def test_unknown_training_setting_in_a_flat_config_is_named():
    with pytest.raises(ValueError, match="unknown training setting 'optim/momentum'"):
        TrialConfig.from_flat({"family": "gru", "optim/momentum": 0.9})
    with pytest.raises(ValueError, match="needs a 'family' key"):
        TrialConfig.from_flat({"optim/lr": 0.1})


def test_the_default_step_milestones_act_within_the_default_epochs() -> None:
    config = TrainConfig()
    assert config.milestones() and max(config.milestones()) < config.epochs  # a step schedule by default steps
