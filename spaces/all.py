"""The conditional space across families: the family first, then that family's space.

Optuna needs one distribution per parameter name across a study, and the families give the same option
name different choices (`model/version` is v1..v3 for ECGNet and v1..v3 with v2.1/v2.2 for the GRU). So here
each family's parameters are sampled under a family-qualified Optuna name ("gru/model/version") and returned
again under the plain name ("model/version"), which is what the trial builds its model from; TPE then models
each family's parameters separately. Training settings (`optim/...`) are shared by all families.
"""
from __future__ import annotations

from typing import Any, Callable

import optuna

from spaces.context import SpaceContext

SpaceFn = Callable[[optuna.Trial, SpaceContext], dict[str, Any]]


class FamilyTrial:
    """A view of an Optuna trial that qualifies `model/...` names with the family and remembers the values."""

    def __init__(self, trial: optuna.Trial, family: str) -> None:
        self._trial, self._family = trial, family
        self.values: dict[str, Any] = {}

    def _name(self, name: str) -> str:
        return f"{self._family}/{name}" if name.startswith("model/") else name

    def _suggest(self, method: str, name: str, *args: Any, **kwargs: Any) -> Any:
        value = getattr(self._trial, method)(self._name(name), *args, **kwargs)
        if name.startswith("model/"):
            self.values[name] = value
        return value

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self._suggest("suggest_float", name, *args, **kwargs)

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._suggest("suggest_int", name, *args, **kwargs)

    def suggest_categorical(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._suggest("suggest_categorical", name, *args, **kwargs)


def make_all(families: dict[str, SpaceFn]) -> SpaceFn:
    def all_families(trial: optuna.Trial, ctx: SpaceContext) -> dict[str, Any]:
        """Every family: `family` first, then that family's parameters."""
        family = trial.suggest_categorical("family", list(families))
        view = FamilyTrial(trial, family)
        constants = families[family](view, ctx)
        return {**view.values, **constants}

    return all_families
