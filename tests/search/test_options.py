"""SearchOptions: validated on construction, hardware defaults resolved, JSON round trip."""
from __future__ import annotations

from pathlib import Path

import pytest

from search.options import CPU_DEFAULTS, GPU_DEFAULTS, OptionError, ResolvedOptions, SearchOptions


def test_cpu_defaults_are_small_and_gpu_defaults_are_the_study_scale() -> None:
    cpu = SearchOptions().resolved(gpus_available=0)
    assert (cpu.n_records, cpu.num_samples, cpu.max_epochs, cpu.grace_period) == (
        CPU_DEFAULTS.n_records, CPU_DEFAULTS.num_samples, CPU_DEFAULTS.max_epochs, CPU_DEFAULTS.grace_period)
    assert cpu.gpus_per_trial == 0.0 and cpu.gpu is False and (cpu.fs, cpu.length) == (250, 2500)
    gpu = SearchOptions().resolved(gpus_available=4)
    assert gpu.gpus_per_trial == 1.0 and gpu.gpu is True and (gpu.fs, gpu.length) == (500, 5000)
    assert gpu.num_samples == GPU_DEFAULTS.num_samples and gpu.n_records == 20000


def test_explicit_values_win_and_grace_is_capped_by_max_epochs() -> None:
    options = SearchOptions(max_epochs=1, num_samples=7, gpus_per_trial=0.25).resolved(gpus_available=1)
    assert (options.max_epochs, options.grace_period, options.num_samples, options.gpus_per_trial) == (1, 1, 7, 0.25)


def test_gpus_per_trial_zero_on_a_gpu_machine_means_cpu_sizes() -> None:
    assert SearchOptions(gpus_per_trial=0).resolved(gpus_available=2).gpu is False


def test_round_trip_through_json_values() -> None:
    options = SearchOptions(space="gru", data=None, results_dir=Path("out"), seed=3).resolved(0)
    again = ResolvedOptions.from_dict(options.to_dict())  # what --resume reads from run.json
    assert again == options and isinstance(again.results_dir, Path) and (again.gpu, again.length) == (False, 2500)
    plain = SearchOptions.from_dict(options.to_dict())  # the options alone: no hardware decisions
    assert not hasattr(plain, "length") and plain.fs == 250
    # A record from before `gpu` and `length` were written: derived from what it holds.
    old = {k: v for k, v in options.to_dict().items() if k not in ("gpu", "length")}
    assert (ResolvedOptions.from_dict(old).gpu, ResolvedOptions.from_dict(old).length) == (False, 2500)


def test_metric_mode_and_fractional_gpus() -> None:
    assert SearchOptions(metric="val_loss").metric_mode == "min"
    assert SearchOptions().metric_mode == "max"
    with pytest.raises(OptionError, match="--gpus-per-trial above 1 must be a whole number"):
        SearchOptions(gpus_per_trial=1.5)
