"""The input rate in every space (spaces.rate): never above the records' rate, segmentations as durations,
stem kernels scaled to the same time span."""
from __future__ import annotations

import optuna
import pytest

from ecg.models import create_model
from spaces import SPACES, SpaceContext, build_space, describe
from spaces.common import segmentations
from ecg.flat_config import FS_KEY
from spaces.rate import at_rate, scale_kernel, scale_segmentation

optuna.logging.set_verbosity(optuna.logging.WARNING)
CPU = SpaceContext(gpu=False, length=2500, max_epochs=6, fs=250)
GPU = SpaceContext(gpu=True, length=5000, max_epochs=60, fs=500)


def test_a_sampled_rate_is_the_one_a_trial_builds_its_model_at() -> None:
    from ecg.train.config import TrialConfig

    assert TrialConfig.from_flat({"family": "gru", FS_KEY: "100"}).fs == 100


@pytest.mark.parametrize(("gpu", "fs", "length", "rates"), [
    (False, 250, 2500, [100, 250]),
    (False, 500, 5000, [100, 250]),       # a CPU search leaves 500 Hz out
    (True, 500, 5000, [100, 250, 500]),
    (True, 250, 2500, [100, 250]),        # never above the records' rate
    (True, 100, 1000, [100]),
    (False, 360, 3600, [100, 250]),       # MIT-BIH's rate: both below it, whole samples at both
    (False, 80, 800, [80]),               # nothing at or below 80 Hz: the records' own rate
    (False, 250, 2501, [250]),            # 2501 samples give no whole number at 100 Hz
])
def test_rates_are_the_hardware_ones_not_above_the_records_rate(gpu, fs, length, rates) -> None:
    assert SpaceContext(gpu=gpu, fs=fs, length=length).rates == rates


@pytest.mark.parametrize("name", list(SPACES))
def test_every_space_samples_the_rate(name: str) -> None:
    assert dict(describe(name, CPU, n_draws=20))[FS_KEY] == "{100, 250}"
    assert dict(describe(name, SpaceContext(gpu=True, fs=100, length=1000), n_draws=5))[FS_KEY] == "{100}"


def test_segmentation_is_a_duration() -> None:
    assert scale_segmentation("500x10", 100 / 500) == "100x10"   # the example: 1 s steps either way
    assert at_rate({FS_KEY: 100, "model/segmentation": "250x10"}, CPU)["model/segmentation"] == "100x10"
    assert at_rate({FS_KEY: 250, "model/segmentation": "250x10"}, CPU)["model/segmentation"] == "250x10"
    assert at_rate({FS_KEY: 250, "model/segmentation": "500x10"}, GPU)["model/segmentation"] == "250x10"
    with pytest.raises(ValueError, match="cannot be scaled"):
        scale_segmentation("125x40", 250 / 500)  # 62.5 features per step at 250 Hz: 40 steps ...
    # ... are never drawn: only step counts that divide the length at every rate (1,000, 2,500 and 5,000).
    assert segmentations(5000, min_steps=10, max_steps=100, also_divide=GPU.lengths) == \
        ["500x10", "250x20", "200x25", "100x50", "50x100"]


def test_stem_kernels_keep_their_time_span() -> None:
    # 29 samples at 250 Hz are 0.116 s: 11.6 samples at 100 Hz, the nearest odd kernel 11 (0.11 s).
    assert scale_kernel(29, 100 / 250) == 11
    assert scale_kernel(75, 100 / 500) == 15 and scale_kernel(15, 250 / 500) == 7
    assert scale_kernel(9, 100 / 250) == 3 and scale_kernel(7, 100 / 500) == 3  # never below 3
    assert at_rate({FS_KEY: 100, "model/stem_kernel": 29, "model/block_kernel": 9}, CPU) == \
        {FS_KEY: 100, "model/stem_kernel": 11, "model/block_kernel": 9}  # later blocks' kernels stay


@pytest.mark.parametrize("name", ["gru", "lstm", "all"])
def test_sampled_configs_build_at_their_rate_with_the_drawn_step_count(name: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    space = build_space(name, CPU)
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = space(trial)
        fs = config[FS_KEY]
        seen.add(fs)
        drawn = {k.split("/", 1)[1] if k.count("/") == 2 else k: v for k, v in trial.params.items()}
        if "model/segmentation" in config:
            features, steps = map(int, config["model/segmentation"].split("x"))
            drawn_features, drawn_steps = map(int, drawn["model/segmentation"].split("x"))
            assert steps == drawn_steps and features * steps == CPU.length_at(fs)
            assert features / fs == drawn_features / CPU.fs  # the same seconds per step
            options = {k.split("/", 1)[1]: v for k, v in config.items() if k.startswith("model/")}
            create_model(config["family"], n_leads=8, n_classes=3, length=CPU.length_at(fs), **options)
        study.tell(trial, 0.0)
    assert seen == {100, 250}
