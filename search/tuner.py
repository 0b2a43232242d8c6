"""The Ray Tune `Tuner`: Optuna (TPE or random, seeded, its study in SQLite in the run folder), ASHA or FIFO,
per-trial resources, best-checkpoint-only retention and retries."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from search.data import TrialData
from search.options import SearchOptions
from search.trainable import train_trial
from spaces import SpaceContext, build_space

STUDY_FILE = "optuna.db"
STUDY_NAME = "search"
EXPERIMENT_NAME = "tune"


def study_storage(run_dir: Path) -> optuna.storages.RDBStorage:
    """The run's Optuna study lives in `run_dir/optuna.db`, so `optuna-dashboard sqlite:///.../optuna.db` opens it."""
    return optuna.storages.RDBStorage(f"sqlite:///{(run_dir / STUDY_FILE).resolve()}")


class OptunaSearchTellingStops(OptunaSearch):
    """OptunaSearch that tells Optuna a trial the scheduler stopped before `max_epochs` as PRUNED.

    Ray's OptunaSearch tells every trial that ends without an error as COMPLETE, so TPE compared a trial
    that ASHA stopped after one epoch with trials trained to the end, and learnt that configs which start fast
    are the good ones (in a 24-trial search it then kept sampling around two early survivors). Told PRUNED,
    the trial keeps its best-so-far value (Optuna takes the last intermediate value as a pruned trial's value)
    and TPE ranks it as Optuna intends for early-stopped trials: below every complete trial, deeper rungs first.
    """

    def __init__(self, *args: Any, max_epochs: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_epochs = max_epochs

    def _suggest_from_define_by_run_func(self, func: Any, ot_trial: optuna.Trial) -> dict:
        # Our spaces return the trial's whole flat config (spaces.Space). Ray's version would add every Optuna
        # parameter name as well, and in `all` those are family-qualified study names, not config names.
        return func(ot_trial)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        epochs_run = (result or {}).get("training_iteration", self._max_epochs)
        stopped_early = bool(result) and not error and epochs_run < self._max_epochs
        if stopped_early:
            # The result that made the scheduler stop the trial was never passed to on_trial_result; report it
            # as the last intermediate value, which Optuna keeps as a pruned trial's value.
            self.on_trial_result(trial_id, result)
        # Without a result and without an error, OptunaSearch tells the trial as PRUNED.
        super().on_trial_complete(trial_id, result=None if stopped_early else result, error=error)


def make_searcher(options: SearchOptions, run_dir: Path, length: int) -> Searcher:
    ctx = SpaceContext(gpu=bool(options.gpu), length=length, max_epochs=options.max_epochs, seed=options.seed,
                       metric=options.metric)
    sampler = (optuna.samplers.RandomSampler(seed=options.seed) if options.sampler == "random"
               else optuna.samplers.TPESampler(seed=options.seed))
    # The sampler learns from each trial's best epoch (its last report's best so far), not its last epoch.
    searcher: Searcher = OptunaSearchTellingStops(space=build_space(options.space, ctx), metric=options.trial_metric,
                                                  mode=options.metric_mode, sampler=sampler, study_name=STUDY_NAME,
                                                  storage=study_storage(run_dir), max_epochs=options.max_epochs)
    if options.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=options.max_concurrent)
    return searcher


def make_scheduler(options: SearchOptions) -> TrialScheduler:
    if options.scheduler == "fifo":
        return FIFOScheduler()
    # The epoch is ASHA's time unit: one `tune.report` per epoch, so training_iteration == epoch. Its rungs
    # compare the trial metric of TuneConfig: each trial's best so far.
    return ASHAScheduler(time_attr="training_iteration", max_t=options.max_epochs,
                         grace_period=options.grace_period, reduction_factor=options.reduction_factor)


def trainable(options: SearchOptions, data: TrialData) -> Any:
    """`train_trial` with its resources and the data placed once in the object store."""
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial or 0}
    trainable_with_data = tune.with_parameters(train_trial, data=data)
    return tune.with_resources(trainable_with_data, resources)


def storage_root(options: SearchOptions, run_dir: Path) -> Path:
    """Where Ray keeps trial results and checkpoints: `--storage-path/<run name>` (shared by all nodes of a
    cluster) or, on one machine, the run folder itself."""
    return (options.storage_path / run_dir.name).resolve() if options.storage_path else run_dir.resolve()


def run_config(options: SearchOptions, run_dir: Path, callbacks: list | None = None) -> tune.RunConfig:
    return tune.RunConfig(
        name=EXPERIMENT_NAME,
        storage_path=str(storage_root(options, run_dir)),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=options.metric,
                                                checkpoint_score_order=options.metric_mode),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        callbacks=callbacks,
        verbose=1,
    )


def _allow_forced_snapshots() -> None:
    """Silence Ray's "snapshotting triggered multiple times" warning, which would print on most epochs.

    With `num_to_keep=1` every new best checkpoint deletes the previous one, so Ray saves the experiment state
    right away to keep it pointing at a checkpoint that exists: that is what lets `--resume` continue every
    trial from its best epoch. The snapshot is deliberate here (a few ms, bench/bench_search.py), not a
    misconfiguration, so the warning is switched off unless the user set the variable.
    """
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def make_tuner(options: SearchOptions, run_dir: Path, data: TrialData, callbacks: list | None = None) -> tune.Tuner:
    _allow_forced_snapshots()
    tune_config = tune.TuneConfig(search_alg=make_searcher(options, run_dir, data.length),
                                  scheduler=make_scheduler(options), num_samples=options.num_samples,
                                  metric=options.trial_metric, mode=options.metric_mode,
                                  # A new trial reuses a finished trial's worker process: without this every
                                  # trial pays a Python + torch start (5-7 s measured here, bench/bench_search.py).
                                  reuse_actors=True)
    return tune.Tuner(trainable(options, data), tune_config=tune_config,
                      run_config=run_config(options, run_dir, callbacks))


def experiment_path(options: SearchOptions, run_dir: Path) -> Path:
    return storage_root(options, run_dir) / EXPERIMENT_NAME


def restore_tuner(options: SearchOptions, run_dir: Path, data: TrialData) -> tune.Tuner:
    """`Tuner.restore` of the run's experiment: finished trials kept, errored ones restarted, unfinished ones
    resumed from their checkpoints; the searcher comes back from the experiment's saved state."""
    _allow_forced_snapshots()
    return tune.Tuner.restore(str(experiment_path(options, run_dir)), trainable=trainable(options, data),
                              resume_unfinished=True, resume_errored=False, restart_errored=False)


def study_trial_count(run_dir: Path) -> int:
    """How many trials the run's Optuna study holds (any state)."""
    study = optuna.load_study(study_name=STUDY_NAME, storage=study_storage(run_dir))
    return len(study.trials)


def fail_orphaned_trials(run_dir: Path) -> int:
    """Mark as FAILED the study's trials still RUNNING once every Ray trial has finished; returns how many.

    They are proposals the searcher made just before a killed driver's last experiment snapshot: Ray never
    created their trials, so nothing will ever report them, and left RUNNING they would sit in the study
    (and in optuna-dashboard) forever. Only called after a complete search, when no trial can be running.
    """
    study = optuna.load_study(study_name=STUDY_NAME, storage=study_storage(run_dir))
    orphans = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in orphans:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)
