"""The private parts of Ray Tune, Ray and Optuna that search/ relies on, pinned in one place: when a release changes
one, the test names what moved and the module to update, instead of a search failing mid-run.

Each is used because no public API does the job (the module named says why); the public ones (`points_to_evaluate`,
`evaluated_rewards`) do not serve: our warm starts are enqueued study trials with a label, and a define-by-run space
takes no points of its own.
"""
from __future__ import annotations

import inspect
import subprocess

import optuna
import pytest
import ray
from ray.tune.search import SearchGenerator
from ray.tune.search.optuna import OptunaSearch


def _source(obj: object) -> str:
    return inspect.getsource(obj)


def test_optuna_search_keeps_the_study_and_trials_where_search_tuner_reads_them() -> None:
    """search/tuner.py (OptunaSearchTellingStops): pickles the searcher without its storage and reopens the study
    where the run folder is now; overrides _setup_study and _suggest_from_define_by_run_func."""
    searcher = OptunaSearch(space=lambda trial: {"x": trial.suggest_float("x", 0, 1)}, metric="m", mode="max",
                            study_name="pinned")
    for name in ("_ot_study", "_ot_trials", "_storage", "_study_name", "_sampler", "_completed_trials", "_metric"):
        assert hasattr(searcher, name), f"OptunaSearch no longer has {name}: update search/tuner.py"
    for method in ("_setup_study", "_suggest_from_define_by_run_func", "save", "restore", "on_trial_result",
                   "on_trial_complete", "suggest"):
        assert callable(getattr(OptunaSearch, method, None)), f"OptunaSearch.{method} is gone: update search/tuner.py"
    assert "self.__dict__.update" in _source(OptunaSearch.restore), \
        "OptunaSearch.restore no longer restores its __dict__: update OptunaSearchTellingStops.save/restore"
    assert "_suggest_from_define_by_run_func" in _source(OptunaSearch.suggest), \
        "OptunaSearch.suggest no longer calls _suggest_from_define_by_run_func for a define-by-run space"


def test_an_optuna_trial_is_rebuilt_from_its_storage_id() -> None:
    """search/tuner.py `_attach`: `optuna.Trial(study, trial._trial_id)` binds a trial to a reopened study."""
    study = optuna.create_study()
    trial = study.ask()
    assert isinstance(trial._trial_id, int), "optuna.Trial no longer keeps _trial_id"  # noqa: SLF001
    again = optuna.Trial(study, trial._trial_id)  # noqa: SLF001
    assert again.number == trial.number


def test_the_search_generator_keeps_the_experiment_it_makes_trials_in() -> None:
    """search/tuner.py RelocatableSearchGenerator: after a resume elsewhere, its saved experiment's storage is moved."""
    assert '"experiment"' in _source(SearchGenerator.get_state) and "_experiment" in _source(SearchGenerator.set_state), \
        "SearchGenerator no longer saves its experiment in its state: update RelocatableSearchGenerator"
    assert 'spec["storage"]' in _source(ray.tune.experiment.config_parser._create_trial_from_spec) or \
        'spec.get("storage")' in _source(ray.tune.experiment.config_parser._create_trial_from_spec), \
        "Ray makes a trial's storage from elsewhere than its experiment spec: update RelocatableSearchGenerator"


def test_a_trial_knows_its_driver_staging_folder_and_its_tag() -> None:
    """search/integrity.py digests the staging copy of each snapshot; search/tuner.trial_dirname reads the tag."""
    from ray.train._internal.storage import StorageContext

    assert "experiment_driver_staging_path" in dir(StorageContext), \
        "StorageContext.experiment_driver_staging_path is gone: update search/integrity.DigestRecorder"
    from ray.tune.experiment import Trial

    assert "experiment_tag" in _source(Trial.__init__), "Trial.experiment_tag is gone: update search.tuner.trial_dirname"


def test_ray_unpickles_nothing_in_a_function_trainables_checkpoint_folder() -> None:
    """search/integrity.state_files lists the experiment folder and each trial's folder, not the checkpoints: Ray
    reads a checkpoint's `_dict_checkpoint.pkl` only for class trainables, and the search's trainable is a function."""
    from ray.tune.trainable import FunctionTrainable, Trainable, wrap_function

    from search.trainable import train_trial

    restore = _source(Trainable.restore)
    assert "_DICT_CHECKPOINT_FILE_NAME" in restore and "not isinstance(self, ray.tune.trainable.FunctionTrainable)" \
        in restore, "Ray's Trainable.restore reads checkpoint files differently: update search/integrity.state_files"
    # tune.with_parameters(train_trial, ...) is a function of `config` alone, which Ray runs as a FunctionTrainable.
    assert inspect.isfunction(train_trial) and issubclass(wrap_function(lambda config: None), FunctionTrainable), \
        "the search's trainable is no longer a function: its checkpoints may hold pickles Ray reads"


def test_ray_starts_its_processes_and_its_sigterm_handler_where_search_signals_replaces_them() -> None:
    """search/signals.starting_ray: Ray's processes in their own session, ray.init's SIGTERM handler left out."""
    from ray._private import services, utils

    assert issubclass(services.ConsolePopen, subprocess.Popen), "Ray no longer has services.ConsolePopen"
    assert "ConsolePopen(" in _source(services.start_ray_process), \
        "Ray's start_ray_process no longer starts its processes with ConsolePopen: update search/signals.py"
    assert callable(utils.set_sigterm_handler) and "set_sigterm_handler(" in _source(ray.init), \
        "ray.init no longer sets its SIGTERM handler through utils.set_sigterm_handler: update search/signals.py"


def test_ray_tune_stops_gracefully_on_sigusr1_and_can_leave_sigint_alone() -> None:
    """search/signals.StopSignals.tune_fit: Ray Tune's graceful stop asked by SIGUSR1, its SIGINT handler off."""
    from ray.tune import tune as tune_module

    catching = _source(tune_module._setup_signal_catching)
    assert "SIGUSR1" in catching and "TUNE_DISABLE_SIGINT_HANDLER" in catching, \
        "Ray Tune no longer stops on SIGUSR1 or honours TUNE_DISABLE_SIGINT_HANDLER: update search/signals.py"


def test_ray_keeps_the_switches_search_cluster_sets() -> None:
    """search/cluster.py: the loopback-only node address and the first-driver worker prestart."""
    from ray._private import ray_constants

    assert hasattr(ray_constants, "ENABLE_RAY_CLUSTER") and hasattr(ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR"), \
        "ray_constants.ENABLE_RAY_CLUSTER is gone: update search/cluster._listen_on_loopback_only"
    from search.cluster import WORKER_STARTUP

    for key in WORKER_STARTUP:  # the raylet checks its system config in C++: the key must be in its library
        assert key in _ray_config_keys(), f"Ray's system config has no {key}: update search/cluster.WORKER_STARTUP"


def _ray_config_keys() -> str:
    """Ray's system-config key names as its shared library spells them."""
    from pathlib import Path

    library = Path(ray.__file__).parent / "_raylet.so"
    return library.read_bytes().decode("latin-1") if library.exists() else ""


@pytest.mark.parametrize("module, name", [
    ("ray._private.authentication.authentication_utils", "is_token_auth_enabled"),
    ("ray._private.authentication.authentication_token_generator", "generate_new_authentication_token"),
    ("ray._private.gcs_utils", "create_gcs_channel"),
    ("ray._private.services", "canonicalize_bootstrap_address"),
])
def test_the_ray_helpers_for_token_auth_and_the_address_probe_exist(module, name) -> None:
    """search/address.py, search/cluster.py, search/progress.py: the cluster's token and a probe before ray.init."""
    import importlib

    assert callable(getattr(importlib.import_module(module), name, None)), \
        f"{module}.{name} is gone: update search/address.py, cluster.py or progress.py"
