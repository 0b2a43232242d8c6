"""The run's Optuna study: opened where its run folder says (`ecg.run_folder.RunFolder.study_url`), and what
the exports and the report read from it.

The searcher (`search.tuner`) writes the study, named after its run folder, with user attributes that say what
the run is (`search.tuner.study_attributes`, and `SEARCH_CONSTANTS_ATTR`). Each study trial carries user
attributes naming the Ray trial it is (`RAY_TRIAL_ID_ATTR`) and the values its model was built with where they
differ from those it drew (`BUILT_ATTR_PREFIX`); a warm-started trial names its configuration
(`spaces.warm_start.WARM_START_ATTR`), a rejected one why it was over budget (`OVER_BUDGET_ATTR`). A trial's number
in the study is its number in trials.csv and its folder's name; a run from before numbered its trials by Ray's
count, recorded as the study trial's `TRIAL_NUMBER_ATTR`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from ecg.run_folder import RunFolder
from search.exports import TrialTable, same_value

RAY_TRIAL_ID_ATTR = "ray_trial_id"
TRIAL_NUMBER_ATTR = "trial_number"  # runs from before a trial's number was the study's
OVER_BUDGET_ATTR = "over_budget"
# "built model/stem_kernel": 7, where the trial drew 17 (options counted in samples are drawn at the records' rate
# and scaled to the trial's data/fs: `spaces.rate`).
BUILT_ATTR_PREFIX = "built "
SEARCH_CONSTANTS_ATTR = "search_constants"  # the config entries no trial sampled, with their value
_MISSING = object()


def drawn_value(params: dict[str, Any], name: str, default: Any = _MISSING) -> Any:
    """The value a study trial drew for config entry `name`: under that name, or family-qualified in the `all`
    space ("gru/model/hidden", `spaces.all.study_name`); `default` when it did not sample it."""
    if name in params:
        return params[name]
    for key, value in params.items():
        if key.endswith(f"/{name}") and key.count("/") == name.count("/") + 1:
            return value
    return default


def built_values(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The config entries whose value as built differs from the one drawn, with the built value."""
    from spaces.rate import SCALED_OPTIONS

    return {name: config[name] for name in SCALED_OPTIONS
            if name in config and drawn_value(params, name, config[name]) != config[name]}


def drawn_where_built(folder: RunFolder) -> dict[str, dict[str, Any]]:
    """Ray trial id -> {config name: the value drawn} for each entry its model was built with another value."""
    study = load(folder)
    if study is None:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for trial in study.trials:
        built = [k.removeprefix(BUILT_ATTR_PREFIX) for k in trial.user_attrs if k.startswith(BUILT_ATTR_PREFIX)]
        drawn = {name: drawn_value(trial.params, name) for name in built}
        drawn = {name: value for name, value in drawn.items() if value is not _MISSING}
        if drawn and RAY_TRIAL_ID_ATTR in trial.user_attrs:
            found[str(trial.user_attrs[RAY_TRIAL_ID_ATTR])] = drawn
    return found


def storage(folder: RunFolder) -> optuna.storages.RDBStorage:
    """The study's storage: `optuna.db` in the run folder, at the folder's present place."""
    return optuna.storages.RDBStorage(folder.study_url)


def create_tables(folder: RunFolder) -> None:
    """optuna.db with Optuna's tables, made ahead (`search.runner` does it while Ray starts) so that the study's
    storage opens at once when the tuner is made."""
    storage(folder).engine.dispose()


def load(folder: RunFolder) -> optuna.Study | None:
    """The run's study, or None when the folder has no optuna.db (a run stopped before its search began)."""
    from ecg.run_folder import STUDY_FILE

    if not folder.has(STUDY_FILE):
        return None
    return optuna.load_study(study_name=folder.study_name, storage=storage(folder))


def end_budget_stopped(folder: RunFolder, trained: dict[str, dict[int, float]], max_epochs: int) -> None:
    """Record the trials in flight when --time-budget ran out (`search.budget`), which Ray Tune ends without
    telling the searcher: `trained` maps each one's Ray trial id to the trial value of every epoch it trained.
    Its epochs are reported where the searcher missed them (a result Tune processed as the budget stopped the
    trial); then one that had trained all `max_epochs` is COMPLETE, one stopped before is PRUNED at its last
    value (the best so far), as a trial ASHA stops, and one that had not trained an epoch is FAIL: it has no value
    to keep. A study of several objectives keeps no intermediate values: its trials are PRUNED without one."""
    study = load(folder) if trained else None
    if study is None:
        return
    single = len(study.directions) == 1
    for trial in study.trials:
        ray_id = trial.user_attrs.get(RAY_TRIAL_ID_ATTR)
        if trial.state != optuna.trial.TrialState.RUNNING or ray_id not in trained:
            continue
        values = trained[ray_id]
        if not values:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            continue
        last = max(values)
        if single:
            live = optuna.trial.Trial(study, trial._trial_id)
            for epoch, value in sorted(values.items()):
                if epoch not in trial.intermediate_values:
                    live.report(value, epoch)
            if last >= max_epochs:
                study.tell(trial.number, values[last])
                continue
        study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)


def fail_orphaned_trials(folder: RunFolder) -> int:
    """Mark as FAILED the study's trials still RUNNING once every Ray trial has finished; returns how many.

    They are proposals the searcher made just before a killed driver's last experiment snapshot: Ray never
    created their trials, so nothing will ever report them, and left RUNNING they would sit in the study
    (and in optuna-dashboard) forever. Only called after a complete search, when no trial can be running.
    """
    study = load(folder)
    if study is None:
        return 0
    orphans = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in orphans:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


@dataclass(frozen=True)
class StudyView:
    """The study's trials as read once (`read`): what the exports and run.json take from it."""

    trials: tuple[optuna.trial.FrozenTrial, ...] = ()

    @property
    def count(self) -> int:
        """How many trials the study holds (any state)."""
        return len(self.trials)

    def trial_numbers(self, table: TrialTable) -> dict[str, int]:
        """Ray trial id -> the study's trial number: the study trial the searcher tagged with the Ray trial id,
        else the one whose sampled parameters the config holds (a study from before the tag; Ray keeps no link,
        and its creation order drifts from Optuna's after a resume). The tag comes first because a config need
        not hold the study's values: sample counts are scaled to the trial's input rate (`spaces.rate`)."""
        tagged = {t.user_attrs[RAY_TRIAL_ID_ATTR]: t.number for t in self.trials if RAY_TRIAL_ID_ATTR in t.user_attrs}
        numbers: dict[str, int] = {}
        for record in table.records:
            if record.trial_id in tagged:
                numbers[record.trial_id] = tagged[record.trial_id]
                continue
            for trial in self.trials:
                if trial.number in numbers.values() or not trial.params:
                    continue
                if all(same_value(record.config.get(k), v) for k, v in trial.params.items() if k in record.config) \
                        and any(k in record.config for k in trial.params):
                    numbers[record.trial_id] = trial.number
                    break
        return numbers

    def user_attr(self, name: str) -> dict[str, str]:
        """Ray trial id -> the study trial's user attribute `name`, for the trials that have it."""
        return {str(t.user_attrs[RAY_TRIAL_ID_ATTR]): str(t.user_attrs[name]) for t in self.trials
                if RAY_TRIAL_ID_ATTR in t.user_attrs and name in t.user_attrs}

    def sampled_names(self) -> set[str]:
        """Every config entry some study trial sampled: its parameter names, and in the `all` space the config
        names under its family-qualified ones (`gru/model/hidden` is `model/hidden`)."""
        names = {name for trial in self.trials for name in trial.params}
        return names | {name.partition("/")[2] for name in names if name.count("/") >= 2}


def read(folder: RunFolder) -> StudyView:
    """The study's trials, read once (none when the folder has no study yet)."""
    study = load(folder)
    return StudyView(tuple(study.get_trials(deepcopy=False)) if study is not None else ())
