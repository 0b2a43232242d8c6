"""The conditional space across families: the family first, then that family's space.

Optuna needs one distribution per parameter name across a study, and the families give the same option
name different choices (`model/version` is v1..v3 for ECGNet and v1..v3 with v2.1/v2.2 for the GRU). So here
each family's model options are sampled under a family-qualified Optuna name ("gru/model/version") and go
into the trial's config under the plain name ("model/version"), which is what the trial builds its model
from; TPE then models each family's parameters separately. Training settings (`optim/...`) are shared by all
families. The qualified names live in the study only: this module is the one place that knows them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # type hints only: launch.py imports spaces to name them, without optuna's import time
    import optuna

from spaces.context import SpaceContext

SpaceFn = Callable[["optuna.Trial", SpaceContext], dict[str, Any]]


def study_name(family: str | None, name: str) -> str:
    """The name a config entry has in the study: `family`'s model options qualified ("gru/model/hidden") in
    the `all` space (family given), every other name as it is."""
    return f"{family}/{name}" if family and name.startswith("model/") else name


class RecordingTrial:
    """A view of an Optuna trial that records every suggested value under the name the trial's config uses.

    With a `family`, model options are suggested under "<family>/model/..." in the study and still recorded
    as "model/...".
    """

    def __init__(self, trial: optuna.Trial, values: dict[str, Any] | None = None, family: str | None = None) -> None:
        self._trial, self._family = trial, family
        self.values: dict[str, Any] = {} if values is None else values

    def for_family(self, family: str) -> "RecordingTrial":
        """The same trial and record, with `family`'s model options qualified in the study."""
        return RecordingTrial(self._trial, self.values, family)

    def _suggest(self, method: str, name: str, *args: Any, **kwargs: Any) -> Any:
        value = getattr(self._trial, method)(study_name(self._family, name), *args, **kwargs)
        self.values[name] = value
        return value

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self._suggest("suggest_float", name, *args, **kwargs)

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._suggest("suggest_int", name, *args, **kwargs)

    def suggest_categorical(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._suggest("suggest_categorical", name, *args, **kwargs)


class AllFamilies:
    """The `all` space: `family` first, then that family's space (a class, not a closure: Ray pickles the
    searcher, and with it this space, into the experiment state that `--resume` restores)."""

    def __init__(self, families: dict[str, SpaceFn]) -> None:
        self.families = dict(families)

    def __call__(self, trial: RecordingTrial, ctx: SpaceContext) -> dict[str, Any]:
        family = trial.suggest_categorical("family", list(self.families))
        return self.families[family](trial.for_family(family), ctx)
