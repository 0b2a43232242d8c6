"""--time-budget (search/budget.py): the clock over every launch of a run, the stopper Ray Tune obeys, the trials
it stopped labelled in trials.csv and recorded in the study. The budget through launch.py with a real search,
and kept over --resume: test_budget_runs.py."""
from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from search import budget
from search.budget import SearchBudget
from search.exports import trials_frame
from search.study import RAY_TRIAL_ID_ATTR, end_budget_stopped
from tests.search.test_exports import TABLE


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """time.time() as the test sets it (`now[0]`), for the budget's clock."""
    now = [1000.0]
    monkeypatch.setattr(budget.time, "time", lambda: now[0])
    yield now
    budget.start(None)


def test_the_budget_counts_what_earlier_launches_spent(clock) -> None:
    budget.start(2.0, spent_before_s=90.0)  # 2 minutes, 90 s of them spent before a --resume
    clock[0] += 29.0
    assert budget.spent_s() == 119.0 and not budget.reached()
    clock[0] += 1.0
    assert budget.reached()
    budget.end()  # the search stopped training: its clock stops
    clock[0] += 500.0
    assert budget.spent_s() == 120.0


def test_without_a_budget_nothing_is_ever_reached(clock) -> None:
    budget.start(None)
    clock[0] += 10**9
    assert not budget.reached() and not SearchBudget().stop_all()


def test_the_stopper_notes_the_trials_in_flight_when_the_budget_runs_out(clock) -> None:
    stopper = SearchBudget()
    trials = [SimpleNamespace(trial_id=i, status=s) for i, s in
              (("done", "TERMINATED"), ("failed", "ERROR"), ("running", "RUNNING"), ("waiting", "PENDING"),
               ("paused", "PAUSED"))]
    budget.start(1.0)
    stopper.on_step_begin(0, trials)
    assert not stopper.stop_all() and budget.stopped_trials() == frozenset()
    assert stopper("running", {"epoch": 1}) is False  # one trial's result never stops anything
    clock[0] += 60.0
    assert stopper.stop_all()
    assert budget.stopped_trials() == {"running", "waiting", "paused"}
    for trial in trials:  # what Tune does next: every trial TERMINATED, none of them told to the searcher
        trial.status = "TERMINATED"
    assert stopper.stop_all() and budget.stopped_trials() == {"running", "waiting", "paused"}  # noted once
    budget.start(1.0)  # a new search in this process starts with none
    assert budget.stopped_trials() == frozenset()


def test_trials_csv_says_which_trials_the_budget_stopped_and_not_asha() -> None:
    frame = trials_frame(TABLE, metric="val_micro_f1", mode="max", max_epochs=4, scheduler="asha",
                         budget_stopped=frozenset({"b", "a"}))  # a had trained its 4 epochs: complete
    assert list(frame["stopped_by_budget"]) == [False, True, False, False]
    assert list(frame["stopped_by_asha"]) == [False, False, False, False]
    assert frame.loc[1, "stopped_at_epoch"] == 2
    plain = trials_frame(TABLE, metric="val_micro_f1", mode="max", max_epochs=4, scheduler="asha")
    assert list(plain["stopped_by_asha"]) == [False, True, False, False] and not plain["stopped_by_budget"].any()


def test_the_study_records_budget_stopped_trials_as_pruned_at_their_best(tmp_path) -> None:
    folder = SimpleNamespace(study_url=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s",
                             has=lambda name: True)
    study = optuna.create_study(study_name="s", storage=folder.study_url, direction="maximize")
    for ray_id, reported in (("cut", [0.3, 0.5]), ("missed", []), ("unstarted", []), ("ending", [0.2, 0.3, 0.6]),
                             ("other", [0.4])):
        trial = study.ask()
        trial.set_user_attr(RAY_TRIAL_ID_ATTR, ray_id)
        for step, value in enumerate(reported, start=1):
            trial.report(value, step)
    # "missed": an epoch Tune processed as the budget stopped it, which the searcher never saw
    # "ending": its last epoch done, its end not yet told when the budget ran out
    end_budget_stopped(folder, {"cut": {1: 0.3, 2: 0.5}, "missed": {1: 0.25}, "unstarted": {},
                                "ending": {1: 0.2, 2: 0.3, 3: 0.6}}, max_epochs=3)
    states = {t.user_attrs[RAY_TRIAL_ID_ATTR]: (t.state.name, t.value, t.intermediate_values) for t in study.trials}
    assert states == {"cut": ("PRUNED", 0.5, {1: 0.3, 2: 0.5}), "missed": ("PRUNED", 0.25, {1: 0.25}),
                      "unstarted": ("FAIL", None, {}), "ending": ("COMPLETE", 0.6, {1: 0.2, 2: 0.3, 3: 0.6}),
                      "other": ("RUNNING", None, {1: 0.4})}


def test_a_trial_record_gives_its_values_by_epoch() -> None:
    assert TABLE.records[0].values("val_micro_f1") == {1: 0.2, 2: 0.5, 3: 0.6, 4: 0.55}
    assert TABLE.records[0].values("no such column") == {}


def test_the_console_status_shows_the_budget_left(clock) -> None:
    from search.progress import SearchProgress

    status = SearchProgress("val_micro_f1", "best_so_far_val_micro_f1", "max", 6).status
    budget.start(None)
    assert "budget" not in status([], elapsed_s=5)
    budget.start(10.0, spent_before_s=120.0)  # a resumed run: 8 of its 10 minutes left
    clock[0] += 75.0
    assert status([], elapsed_s=75) == "[01:15] no trials yet; time budget left 06:45"
