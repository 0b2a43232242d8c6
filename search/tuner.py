"""The Ray Tune `Tuner`: Optuna (TPE or random, seeded, its study in SQLite in the run folder), ASHA or FIFO,
per-trial resources, best-checkpoint-only retention and retries."""
from __future__ import annotations

import copy
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, SearchGenerator, Searcher
from ray.tune.search.optuna import OptunaSearch

from ecg.train.config import flatten
from ecg.train.costs import Budget
from search.budget import SearchBudget
from search.data import TrialData
from ecg.run_folder import EXPERIMENT, RUN_FILE, RunFolder
from search.exports import stopped_early
from search.options import SearchOptions
from search.study import (BUILT_ATTR_PREFIX, OVER_BUDGET_ATTR, RAY_TRIAL_ID_ATTR, SEARCH_CONSTANTS_ATTR,
                          TRIAL_NUMBER_ATTR, built_values, drawn_value, storage as study_storage)
from search.progress import SearchProgress
from search.tensorboard import loggers as tensorboard_loggers, note_sampled
from search.trainable import OVER_BUDGET, train_trial
from spaces import FAMILY_SPACES, build_space
from ecg.flat_config import FS_KEY
from spaces.rate import SCALED_OPTIONS
from spaces.warm_start import WARM_START_ATTR, WarmStart

# The run folder whose study a restored searcher must use (`restore_tuner` sets it): the searcher's saved state
# names the study's file where the folder was when it was saved, which is elsewhere after a move or a copy.
_restoring_into: RunFolder | None = None
_restoring_experiment: Path | None = None
# Ray trial id -> its number in the study, set by the searcher as it proposes the trial (in the driver) and read by
# `trial_dirname` when Ray names the trial's folder right after: one number in the study, the folder, trials.csv
# and TensorBoard.
_study_numbers: dict[str, int] = {}


class OptunaSearchTellingStops(OptunaSearch):
    """OptunaSearch that tells Optuna a trial the scheduler stopped before `max_epochs` as PRUNED.

    Ray's OptunaSearch tells every trial that ends without an error as COMPLETE, so TPE compared a trial
    that ASHA stopped after one epoch with trials trained to the end, and learnt that configs which start fast
    are the good ones (in a 24-trial search it then kept sampling around two early survivors). Told PRUNED,
    the trial keeps its best-so-far value (Optuna takes the last intermediate value as a pruned trial's value)
    and TPE ranks it as Optuna intends for early-stopped trials: below every complete trial, deeper rungs first.
    """

    def __init__(self, *args: Any, max_epochs: int, budget: Budget | None = None,
                 warm_starts: list[tuple[WarmStart, dict]] | None = None,
                 study_attrs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._max_epochs = max_epochs
        self._budget = budget or Budget()
        self._warm_starts = list(warm_starts or [])
        self._study_attrs = dict(study_attrs or {})  # what the run is, for optuna-dashboard (`study_attributes`)
        # A trial is numbered by its study trial (Optuna's number, from 0) in its folder's name and trials.csv.
        # A searcher saved before that (restored by --resume of an older run) lacks the flag: its trials kept
        # Ray's count, 1, 2, ..., also recorded as the study trial's `trial_number` attribute.
        self._numbered_by_study = True
        self._suggested = 0  # trials this searcher asked the study for: Ray's count (saved, so a resume counts on)
        self._constants: dict[str, Any] | None = None  # config entries no trial sampled so far, with their value
        self._sampled: set[str] = set()  # config names some trial sampled
        self._last_step: dict[str, int] = {}  # the last epoch reported as an intermediate value, per trial
        super().__init__(*args, **kwargs)

    # -- the study by location, never by a pickled connection

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (tuner.pkl, the saved searcher state) without the study's storage, whose URL names the folder
        where it was made: unpickled elsewhere, Optuna would connect to (or create) that file. The trials are kept
        as their storage ids; `_attach` opens the study again where the run folder is."""
        state = self.__dict__.copy()
        state["_study_url"] = self._storage.url if self._storage is not None else state.get("_study_url")
        state["_storage"] = state["_ot_study"] = None
        state["_ot_trials"] = {tid: (t if isinstance(t, int) else t._trial_id)  # noqa: SLF001
                               for tid, t in self._ot_trials.items()}
        return state

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump(self.__getstate__(), out)

    def _attach(self, folder: RunFolder | None = None) -> None:
        """Open the study (in `folder`, else where it was) and bind the searcher's trials to it again."""
        storage = study_storage(folder) if folder is not None else optuna.storages.RDBStorage(self._study_url)
        self._storage = storage
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=storage, sampler=self._sampler)
        self._ot_trials = {tid: optuna.Trial(self._ot_study, t if isinstance(t, int) else t._trial_id)  # noqa: SLF001
                           for tid, t in self._ot_trials.items()}

    def _attached(self) -> None:
        if self._ot_study is None and getattr(self, "_study_url", None):
            self._attach()

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        # optuna-dashboard and study.trials_dataframe() then call the value by its name, not "value".
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names(list(self._metric) if isinstance(self._metric, list) else [self._metric])
        if not self._ot_study.trials:  # a new study (a resumed one already holds its warm starts)
            for key, value in self._study_attrs.items():
                self._ot_study.set_user_attr(key, value)
            for start, params in self._warm_starts:
                # Enqueued trials come first, in order; what a config leaves open the sampler draws.
                self._ot_study.enqueue_trial(params, user_attrs={WARM_START_ATTR: start.label},
                                             skip_if_exists=False)

    def suggest(self, trial_id: str) -> dict | None:
        self._attached()
        new = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if new and trial_id in self._ot_trials:
            self._suggested += 1
            ot_trial = self._ot_trials[trial_id]
            ot_trial.set_user_attr(RAY_TRIAL_ID_ATTR, trial_id)
            if getattr(self, "_numbered_by_study", False):
                _study_numbers[trial_id] = ot_trial.number
            else:
                ot_trial.set_user_attr(TRIAL_NUMBER_ATTR, self._suggested)
            if isinstance(config, dict):
                flat, params = flatten(config), ot_trial.params  # Ray nests "model/width" as config["model"]["width"]
                note_sampled(trial_id, [name for name in flat if drawn_value(params, name, None) is not None])
                for name, value in built_values(flat, params).items():
                    ot_trial.set_user_attr(f"{BUILT_ATTR_PREFIX}{name}", value)
                self._note_constants(flat, params)
        return config

    def _note_constants(self, config: dict[str, Any], params: dict[str, Any]) -> None:
        """Keep the study's `search_constants` attribute to the config entries that no trial so far sampled and
        that every trial had with the same value (the space's constants, e.g. optim/epochs)."""
        if not hasattr(self, "_sampled"):  # a searcher saved before this attribute
            return
        self._sampled |= {name for name in config if drawn_value(params, name, None) is not None}
        constants = {k: v for k, v in config.items() if k not in self._sampled}
        if self._constants is not None:
            constants = {k: v for k, v in constants.items() if k in self._constants and self._constants[k] == v}
        if constants != self._constants:
            self._constants = constants
            self._ot_study.set_user_attr(SEARCH_CONSTANTS_ATTR, dict(sorted(constants.items())))

    def _suggest_from_define_by_run_func(self, func: Any, ot_trial: optuna.Trial) -> dict:
        # Our spaces return the trial's whole flat config (spaces.Space). Ray's version would add every Optuna
        # parameter name as well, and in `all` those are family-qualified study names, not config names.
        return func(ot_trial)

    def _finished_in_study(self, trial_id: str) -> bool:
        ot_trial = self._ot_trials.get(trial_id)
        return ot_trial is not None and \
            ot_trial.storage.get_trial(ot_trial._trial_id).state.is_finished()  # noqa: SLF001

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._attached()
        if result.get(OVER_BUDGET):
            return  # a rejected trial's one report has no score: nothing for the study's curve
        if trial_id not in self._completed_trials and self._finished_in_study(trial_id):
            # After a kill, Ray's last experiment snapshot can predate the end of a trial that the study (in
            # SQLite, written at once) already recorded; --resume then reruns the trial's last epochs from its
            # checkpoint and reports them again. The study keeps what it recorded; Optuna would refuse the update.
            self._completed_trials.add(trial_id)
        super().on_trial_result(trial_id, result)
        self._last_step[trial_id] = result["training_iteration"]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._attached()
        epochs_run = (result or {}).get("training_iteration", self._max_epochs)
        ended_early = bool(result) and not error and stopped_early(epochs_run, self._max_epochs)
        ot_trial = self._ot_trials.get(trial_id)
        if result and ot_trial is not None and trial_id not in self._completed_trials:
            if self._budget and "params" in result:
                # Optuna 5's constraints (its TPESampler reads every trial's; `constraints_func` is deprecated):
                # > 0 is infeasible, and TPE puts infeasible trials below every feasible one.
                for key, value in self._budget.violations(result).items():
                    ot_trial.set_constraint(key, value)
            if result.get(OVER_BUDGET):
                # Rejected before training: told PRUNED (no score), and infeasible through its constraints.
                ot_trial.set_user_attr(OVER_BUDGET_ATTR, result[OVER_BUDGET])
                self._last_step.pop(trial_id, None)
                super().on_trial_complete(trial_id, result=None, error=error)
                return
        first = self.metric[0] if isinstance(self.metric, list) else self.metric
        if result and first in result and self._last_step.get(trial_id) != result["training_iteration"] \
                and trial_id not in self._completed_trials:
            # The result that ended the trial (ASHA's stop, or max_epochs) was never passed to on_trial_result:
            # report it too, so the study's curve has every epoch; a pruned trial's value is its last one.
            self.on_trial_result(trial_id, result)
        self._last_step.pop(trial_id, None)
        # Without a result and without an error, OptunaSearch tells the trial as PRUNED.
        super().on_trial_complete(trial_id, result=None if ended_early else result, error=error)

    def restore(self, checkpoint_path: str) -> None:
        """Ray's restore (`--resume`), pointed at the run folder's own study, then fail the study's RUNNING
        trials this searcher does not own.

        The saved state holds the study's storage URL and trials bound to it, as they were where the folder
        was when the state was saved; after a move or a copy that is another folder's file, so the study and
        every trial are opened again in `_restoring_into`. The RUNNING trials are proposals made after the
        experiment state that `--resume` restores was saved (the study in SQLite is written at once, the state
        every few seconds): no Ray trial will ever report them, so left RUNNING they would sit in the study
        and in optuna-dashboard as running for the whole resumed search.
        """
        super().restore(checkpoint_path)
        self._attach(_restoring_into)
        owned = {t._trial_id for t in self._ot_trials.values()}  # noqa: SLF001 (optuna.Trial's storage id)
        for frozen in self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if frozen._trial_id not in owned:  # noqa: SLF001
                self._ot_study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)


class RelocatableSearchGenerator(SearchGenerator):
    """Ray Tune's SearchGenerator, which makes the trials from the searcher's suggestions, with its new trials
    placed where the experiment is now.

    Its saved state holds the experiment as it was first run, storage place included; after `--resume` of a
    moved or copied run folder, Ray moves the restored trials to the new place but would create every new
    trial in the old one (in the original of a copy). `set_state` takes the experiment's present place from
    `restore_tuner`."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if _restoring_experiment is None or self._experiment is None:
            return
        storage = copy.copy(self._experiment.spec["storage"])
        storage.storage_path = storage.storage_fs_path = str(_restoring_experiment.parent)
        storage.experiment_dir_name = _restoring_experiment.name
        self._experiment.spec["storage"] = storage
        if hasattr(self._experiment, "storage"):
            self._experiment.storage = storage


def budget(options: SearchOptions) -> Budget:
    return Budget(max_params=options.max_params, max_latency_ms=options.max_latency_ms)


def grouped(options: SearchOptions) -> bool:
    """Whether the search's TPE groups its parameters: on a space across families (`all`). There Optuna's default
    joint model holds only what every trial drew (the family, the rate, the training settings) and samples each
    family's options one by one; grouped, a family's options are modelled together from that family's trials. On
    one family's space the default's joint model already holds every option but a conditional flag, so grouping
    would change nothing but the driver's time per suggestion (docs/search.md, "The sampler")."""
    return options.sampler == "tpe" and options.space not in FAMILY_SPACES


def tpe_sampler(seed: int, group: bool) -> optuna.samplers.TPESampler:
    """Optuna's TPE, seeded; with `group`, one joint model per group of parameters that trials drew together."""
    if not group:
        return optuna.samplers.TPESampler(seed=seed)
    with warnings.catch_warnings():  # `group` is marked experimental since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)


def sampler_description(options: SearchOptions) -> str:
    """The study's `sampler` attribute: random, tpe or tpe (group)."""
    return "tpe (group)" if grouped(options) else options.sampler


def make_searcher(options: SearchOptions, folder: RunFolder, fs: int, length: int,
                  starts: list[tuple[WarmStart, dict]] | None = None) -> Searcher:
    """OptunaSearch over the run's space; with --objectives the study has one direction per objective (Optuna's
    multi-objective TPE); with a budget, TPE also learns the feasible region from each trial's constraints."""
    ctx = options.space_context(fs, length)
    sampler = (optuna.samplers.RandomSampler(seed=options.seed) if options.sampler == "random"
               else tpe_sampler(options.seed, group=grouped(options)))
    # The sampler learns from each trial's best epoch (its last report's best so far), not its last epoch.
    columns = options.objective_columns
    metric: Any = [c for c, _ in columns] if options.objectives else options.trial_metric
    mode: Any = [m for _, m in columns] if options.objectives else options.metric_mode
    searcher: Searcher = OptunaSearchTellingStops(space=build_space(options.space, ctx), metric=metric, mode=mode,
                                                  sampler=sampler, study_name=folder.study_name,
                                                  storage=study_storage(folder), max_epochs=options.max_epochs,
                                                  budget=budget(options), warm_starts=starts,
                                                  study_attrs=study_attributes(options, folder, ctx))
    if options.max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=options.max_concurrent)
    return searcher


def study_attributes(options: SearchOptions, folder: RunFolder, ctx: Any) -> dict[str, Any]:
    """What the study's user attributes say about the run (optuna-dashboard shows them on the study's page): its
    folder, the metric and what each trial's value is, the space, the data and task, the seed and the search's
    settings; `search_constants` is added as trials come (`OptunaSearchTellingStops._note_constants`)."""
    data = folder.record.data if folder.has(RUN_FILE) else None
    convention = (data.convention if data is not None else None) or {}
    attrs: dict[str, Any] = {
        "run": folder.path.name,
        "space": options.space,
        "data": data.source if data is not None and data.source else "?",
        "task": convention.get("task") or "-",
        "metric": options.metric,
        "direction": "maximize" if options.metric_mode == "max" else "minimize",
        "seed": options.seed,
        "trial_value": f"{options.trial_metric}: the trial's best {options.metric} over the epochs it ran "
                       "(its intermediate values: the best so far at each epoch)",
        "trial_numbers": "a trial's number here is its trial_number in trials.csv, the number in its folder's name "
                         "under tune/ (train_trial_<ray_trial_id>_<number>_<family>, TensorBoard's run) and in the "
                         "Ray workers' log lines; the dashboard's trial_id=N is the database's own id",
        "sampler": sampler_description(options),
        "scheduler": (f"asha (grace_period {options.grace_period}, reduction_factor {options.reduction_factor})"
                      if options.scheduler == "asha" else options.scheduler),
        "max_epochs": options.max_epochs,
        "num_samples": options.num_samples,
    }
    if options.objectives:
        attrs["objectives"] = options.objectives
    if len(ctx.rates) > 1:
        attrs["drawn_vs_built"] = (
            f"options counted in input samples ({', '.join(SCALED_OPTIONS)}) are drawn at the records' {ctx.fs} Hz "
            f"(a trial's parameters here) and scaled to the trial's {FS_KEY}: a trial at a lower rate says what its "
            f"model was built with in its user attributes '{BUILT_ATTR_PREFIX}<name>' (e.g. {BUILT_ATTR_PREFIX}"
            f"model/stem_kernel 7 for 17 drawn, at 100 Hz), as trials.csv and best_configs.csv hold it")
    return attrs


def make_scheduler(options: SearchOptions) -> TrialScheduler:
    if options.scheduler == "fifo":
        return FIFOScheduler()
    # The epoch is ASHA's time unit: one `tune.report` per epoch, so training_iteration == epoch. Its rungs
    # compare the trial metric of TuneConfig: each trial's best so far.
    if budget(options):
        # A trial rejected over budget reports a NaN score once; while a rung holds only such trials, ASHA's
        # np.nanpercentile warns on every result. NaN is ignored there, which is what a rejected trial should be.
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
    return ASHAScheduler(time_attr="training_iteration", max_t=options.max_epochs,
                         grace_period=options.grace_period, reduction_factor=options.reduction_factor)


def trainable(options: SearchOptions, data: TrialData) -> Any:
    """`train_trial` with its resources and the data placed once in the object store."""
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial or 0}
    if options.memory_per_trial:  # Ray's "memory" resource is in bytes
        resources["memory"] = int(options.memory_per_trial * 2**30)
    trainable_with_data = tune.with_parameters(train_trial, data=data, budget=budget(options))
    return tune.with_resources(trainable_with_data, resources)


def run_config(options: SearchOptions, folder: RunFolder, callbacks: list | None = None) -> tune.RunConfig:
    time_budget = SearchBudget() if options.time_budget is not None else None
    return tune.RunConfig(
        name=EXPERIMENT,
        storage_path=str(folder.experiment_dir(options.storage_path).parent),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=options.metric,
                                                checkpoint_score_order=options.metric_mode),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        stop=time_budget,
        # Quiet by default: our SearchProgress prints a status and one line per trial; -v: Ray's own output.
        # Ray adds its own TensorBoard logger unless given one: ours logs the epoch's metrics only.
        callbacks=[*(callbacks or []), *([time_budget] if time_budget else []),
                   *tensorboard_loggers(options.metric, options.trial_metric),
                   *([] if options.verbose else [progress_callback(options)])],
        verbose=2 if options.verbose else 0,
    )


def progress_callback(options: SearchOptions) -> SearchProgress:
    return SearchProgress(options.metric, options.trial_metric, options.metric_mode, options.max_epochs,
                          asha=options.scheduler == "asha")


def _allow_forced_snapshots() -> None:
    """Silence Ray's "snapshotting triggered multiple times" warning, which would print on most epochs.

    With `num_to_keep=1` every new best checkpoint deletes the previous one, so Ray saves the experiment state
    right away to keep it pointing at a checkpoint that exists: that is what lets `--resume` continue every
    trial from its best epoch. The snapshot is deliberate here (a few ms, bench/bench_search.py), not a
    misconfiguration, so the warning is switched off unless the user set the variable.
    """
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def make_tuner(options: SearchOptions, folder: RunFolder, data: TrialData, callbacks: list | None = None,
               starts: list[tuple[WarmStart, dict]] | None = None) -> tune.Tuner:
    global _restoring_into, _restoring_experiment
    _allow_forced_snapshots()
    _restoring_into = _restoring_experiment = None  # a new search: nothing is restored
    searcher = RelocatableSearchGenerator(make_searcher(options, folder, data.fs, data.length, starts))
    # With --objectives, Tune's metric is the first objective: ASHA's rungs and the checkpoint kept compare it.
    tune_config = tune.TuneConfig(search_alg=searcher,
                                  scheduler=make_scheduler(options), num_samples=options.num_samples,
                                  metric=options.trial_metric, mode=options.metric_mode,
                                  # A new trial reuses a finished trial's worker process: without this every
                                  # trial pays a Python + torch start (measured: bench/bench_search.py, section 4).
                                  reuse_actors=True, trial_dirname_creator=trial_dirname)
    return tune.Tuner(trainable(options, data), tune_config=tune_config,
                      run_config=run_config(options, folder, callbacks))


def trial_dirname(trial: Any) -> str:
    """`train_trial_<trial id>_<number>_<family>`: the trial folder, and so the trial's TensorBoard run name;
    `<number>` is the trial's number in the study (`_study_numbers`), as in optuna-dashboard and trials.csv.

    Ray's default appends every sampled parameter and the date (~200 characters, cut mid-name); this keeps
    the `<trainable>_<trial id>_<number>_` prefix that `search.trial_failures.trial_number` and the tests read.
    A trial the searcher did not number (a run from before, resumed) keeps the number Ray's SearchGenerator gave
    it, the start of its `experiment_tag` ("3_family=...").
    """
    number = _study_numbers.get(trial.trial_id)
    if number is None:
        number = str(trial.experiment_tag).split("_", 1)[0]
    family = str((trial.config or {}).get("family", "trial"))
    return f"{trial.trainable_name}_{trial.trial_id}_{number}_{family}"


def restore_tuner(options: SearchOptions, folder: RunFolder, data: TrialData) -> tune.Tuner:
    """`Tuner.restore` of the run's experiment: finished trials kept, errored ones restarted, unfinished ones
    resumed from their checkpoints; the searcher comes back from the experiment's saved state, with the study in
    `folder` (wherever the folder is now). Ray itself moves the trials' paths to where the experiment is now."""
    global _restoring_into, _restoring_experiment
    _allow_forced_snapshots()
    _restoring_into, _restoring_experiment = folder, folder.experiment_dir(options.storage_path)
    return tune.Tuner.restore(str(folder.experiment_dir(options.storage_path)), trainable=trainable(options, data),
                              resume_unfinished=True, resume_errored=False, restart_errored=False)
