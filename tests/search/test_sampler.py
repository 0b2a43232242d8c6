"""The search's TPE on the space across families: the parameters that trials drew together are modelled jointly,
each family's among them (Optuna's default models jointly only what every trial drew); one family's space keeps
Optuna's default, and Optuna's experimental warning stays out of the user's console. That launch.py's search on
`all` builds the grouped sampler: test_budget_runs.py reads the study's `sampler` attribute after a real search."""
from __future__ import annotations

import warnings

import optuna
import pytest

from search.options import SearchOptions
from search.tuner import grouped, sampler_description, tpe_sampler
from spaces import build_space
from spaces.context import SpaceContext

CPU = SpaceContext(gpu=False, length=2500, max_epochs=6, fs=250)  # the CPU synthetic set


@pytest.fixture(scope="module")
def all_study() -> optuna.Study:
    """40 trials of the `all` space drawn at random, each valued by its number."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    space = build_space("all", CPU)
    for number in range(40):
        trial = study.ask()
        space(trial)
        study.tell(trial, float(number))
    return study


def _families(study: optuna.Study) -> set[str]:
    return {t.params["family"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}


def test_each_family_s_parameters_are_in_the_joint_model(all_study) -> None:
    families = _families(all_study)
    assert len(families) >= 4  # the draw reached most families: the check below is about them all
    pending = all_study.ask()
    grouped = tpe_sampler(0, group=True).infer_relative_search_space(all_study, pending)
    for family in families:
        assert any(name.startswith(f"{family}/model/") for name in grouped), family
    # Optuna's default TPE models jointly only what every trial drew: no family's own options.
    default = optuna.samplers.TPESampler(seed=0).infer_relative_search_space(all_study, pending)
    assert "family" in default and not any(name.startswith(f"{f}/") for f in families for name in default)
    all_study.tell(pending, state=optuna.trial.TrialState.FAIL)


def test_past_the_startup_draws_a_family_s_options_come_from_the_joint_model(all_study) -> None:
    sampler = tpe_sampler(1, group=True)
    pending = all_study.ask()
    relative = sampler.sample_relative(all_study, pending, sampler.infer_relative_search_space(all_study, pending))
    assert any(name.startswith(f"{f}/model/") for f in _families(all_study) for name in relative), relative
    all_study.tell(pending, state=optuna.trial.TrialState.FAIL)


def test_no_experimental_warning_reaches_the_console() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = tpe_sampler(0, group=True)
    assert isinstance(sampler, optuna.samplers.TPESampler)


@pytest.mark.parametrize(("space", "sampler", "group", "described"), [
    ("all", "tpe", True, "tpe (group)"), ("gru", "tpe", False, "tpe"), ("ecgnet", "tpe", False, "tpe"),
    ("all", "random", False, "random")])
def test_only_the_space_across_families_is_grouped(space, sampler, group, described) -> None:
    options = SearchOptions(space=space, sampler=sampler)
    assert grouped(options) is group and sampler_description(options) == described
