"""--time-budget: how long a search trains, counted over every launch of its run folder.

Ray Tune's own `time_budget_s` starts afresh when `Tuner.restore` resumes a run (its `TimeoutStopper` keeps its
clock out of the experiment's state), so a search stopped after 6 of its 8 hours would get 8 more. Tune is given
`SearchBudget` instead: a stopper without a clock of its own, which stops every trial once this process's
deadline has passed. The search sets that deadline (`start`) as it starts: what is left of the budget after the
time earlier launches spent (run.json's `budget_spent_s`). The copy Ray pickles into the experiment and
unpickles on `--resume` obeys the resumed process's deadline.

When Tune stops its trials at the end of an experiment it tells neither the searcher nor the callbacks, so
`SearchBudget` is also a callback: it sees Tune's trials each step and, when the budget runs out, notes the
trials still in flight (`stopped_trials`), which the exports label and the study records as stopped.
"""
from __future__ import annotations

import time

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.stopper import Stopper


class _Clock:
    """The budget of the search this process runs: its deadline and the time earlier launches spent."""

    def __init__(self) -> None:
        self.budget_s: float | None = None
        self.spent_before_s = 0.0
        self.started: float | None = None
        self.ended: float | None = None
        self.trials: list[Trial] = []  # Tune's trials, as its last step began
        self.stopped: frozenset[str] | None = None  # the trials in flight when the budget ran out

    def start(self, budget_min: float | None, spent_before_s: float = 0.0) -> None:
        self.budget_s = None if budget_min is None else budget_min * 60.0
        self.spent_before_s = spent_before_s
        self.started, self.ended = time.time(), None
        self.trials, self.stopped = [], None

    def end(self) -> None:
        self.ended = time.time()

    def spent_s(self) -> float:
        """Seconds of the budget spent, this launch's included."""
        if self.started is None:
            return self.spent_before_s
        return self.spent_before_s + (self.ended or time.time()) - self.started

    def reached(self) -> bool:
        return self.budget_s is not None and self.spent_s() >= self.budget_s


_clock = _Clock()


def start(budget_min: float | None, spent_before_s: float = 0.0) -> None:
    """The search starts now with `budget_min` minutes in all (None: no budget), `spent_before_s` of them spent
    by earlier launches of the same run."""
    _clock.start(budget_min, spent_before_s)


def end() -> None:
    """The search has stopped training: its clock stops."""
    _clock.end()


def spent_s() -> float:
    """Seconds the search has trained, over every launch of its run."""
    return round(_clock.spent_s(), 1)


def left_s() -> float | None:
    """Seconds of the budget left (None without one)."""
    return None if _clock.budget_s is None else max(0.0, _clock.budget_s - _clock.spent_s())


def reached() -> bool:
    """Whether the search has used its whole budget (False without one)."""
    return _clock.reached()


def stopped_trials() -> frozenset[str]:
    """The Ray trial ids the budget stopped: those running or waiting when it ran out."""
    return _clock.stopped or frozenset()


class SearchBudget(Stopper, Callback):
    """Ray Tune's stopper for --time-budget, given as `RunConfig(stop=...)` and among its callbacks: every trial
    stops once the budget is spent (checked each step of Tune's loop, before Tune stops them); a single trial's
    results never stop it on their own."""

    def on_step_begin(self, iteration: int, trials: list[Trial], **info) -> None:
        _clock.trials = trials  # Tune's own list: read when the budget runs out, whichever copy Ray calls

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        if not reached():
            return False
        if _clock.stopped is None:
            _clock.stopped = frozenset(t.trial_id for t in _clock.trials
                                       if t.status not in (Trial.TERMINATED, Trial.ERROR))
        return True
