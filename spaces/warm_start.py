"""Warm starts: configurations a search runs first, kept only where the space can express them.

Two sources, one check:
- `study_configs(length)`: the study's named variants (`ecg.models.variants.VARIANTS`, the one table of the
  study's published settings). A variant fixes what the study published (family, version, kernel set, depth,
  segmentation, use of age/sex); what the study left open (widths, hidden sizes, training settings) stays
  for the sampler to draw, as in any trial.
- `read_configs_csv(path)`: the rows of a best_configs.csv (`family`, `model/...`, `optim/...`), read as text
  with pandas, never unpickled; a malformed file is refused with one line naming the file, row and column.

`expressible(space, ctx, config)` runs the space against the config: every value the space asks for must lie in
its distribution (a categorical choice, an integer range and step, a float range) and every other entry must be
a constant of the space or one it never asks in that branch; nothing is clamped: a config that fails is skipped
with the first reason. What comes back is the study's parameter names and values, for `enqueue_trial`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecg.flat_config import FAMILY, FS_KEY, config_columns, read_rows
from ecg.segmentation import same_steps
from spaces.all import study_name
from spaces.context import SpaceContext
from spaces.rate import built_at

STUDY_LENGTH = 5000  # the study's records: 10 s at 500 Hz; its segmentations are written for that length
WARM_START_ATTR = "warm_start"  # the study trial's user attribute naming where an enqueued config came from


class WarmStartError(ValueError):
    """A warm-start file that cannot be used; the message is one line naming the file, row and column."""


@dataclass
class WarmStart:
    """One configuration to run first: where it came from (`label`) and its flat config (`family`, `model/...`,
    `optim/...`; `row` is its line in a file, for messages)."""

    label: str
    config: dict[str, Any]
    row: int | None = None
    # True: the config's sample counts are as the space draws them (at the records' rate); False (a CSV row):
    # as its model was built, at its own data/fs (what trials.csv and best_configs.csv hold).
    drawn: bool = False


@dataclass
class Expressed:
    """The outcome of `expressible`: the study's parameters to enqueue, or why the space cannot express it."""

    params: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def at_length(options: dict[str, Any], length: int) -> dict[str, Any]:
    """The study's options for records of `length` samples: a segmentation is a duration per step, so "500x10"
    (ten 1-s steps at 5,000 samples) is "250x10" at 2,500; one that does not divide the length is left as it is
    and the space refuses it."""
    out = dict(options)
    if "segmentation" in out and length != STUDY_LENGTH:
        out["segmentation"] = same_steps(out["segmentation"], STUDY_LENGTH, length) or out["segmentation"]
    return out


def study_configs(ctx: SpaceContext) -> list[WarmStart]:
    """Every study variant as a flat config for this run's records, in the table's order. The study trained at
    its records' full rate: a variant runs at the highest `data/fs` the run samples, its segmentation given as
    drawn at the records' rate (`spaces.rate` scales it to the trial's)."""
    from ecg.models.variants import VARIANTS

    fs = max(ctx.rates)
    return [WarmStart(f"study:{name}", {"family": family, FS_KEY: fs,
                                        **{f"model/{k}": v for k, v in at_length(opts, ctx.length).items()}},
                      drawn=True)
            for name, (family, opts) in VARIANTS.items()]


def read_configs_csv(path: Path) -> list[WarmStart]:
    """The rows of a best_configs.csv as warm starts (WarmStartError, one line, for a file that is not one)."""
    path = Path(path)
    if not path.is_file():
        raise WarmStartError(f"--warm-start {path}: no such file (give 'study' or a best_configs.csv)")
    try:
        rows = read_rows(path)  # text: each value is matched to its space
    except ValueError as err:
        raise WarmStartError(f"--warm-start {err}") from None
    if not rows:
        raise WarmStartError(f"--warm-start {path}: no rows")
    if FAMILY not in rows[0]:
        raise WarmStartError(f"--warm-start {path}: no 'family' column (a best_configs.csv has family, model/..., "
                             "optim/...)")
    from ecg.models import list_models

    families = list_models()
    starts = []
    for line, row in enumerate(rows, start=2):  # the header is line 1
        config = {c: row[c] for c in config_columns(row) if row[c] != ""}
        if config.get(FAMILY) not in families:
            raise WarmStartError(f"--warm-start {path} row {line}, column family: {config.get(FAMILY, '')!r} is not "
                                 f"a model family ({', '.join(families)})")
        starts.append(WarmStart(f"{path.name}:row {line}", config, row=line))
    return starts


def _matches(choice: Any, value: Any) -> bool:
    if isinstance(choice, bool) or isinstance(value, bool):
        return str(choice).lower() == str(value).lower()
    if isinstance(choice, (int, float)):
        try:
            return float(value) == float(choice)
        except (TypeError, ValueError):
            return False
    return str(choice) == str(value)


class _CheckingTrial:
    """Plays an Optuna trial for a space: each parameter the config fixes is checked against the distribution
    the space asks with and returned as the space's own value (CSV text "8" as the choice 8); parameters the
    config leaves open return a valid placeholder and stay open (the sampler draws them)."""

    def __init__(self, fixed: dict[str, Any], where: str, built: dict[str, Any] | None = None) -> None:
        # `built`: {study name: the plain option name} of the options a CSV row holds as built at its data/fs;
        # a draw matches such a value when the draw, built at that rate, is the value (`spaces.rate.built_at`).
        self.fixed, self.where, self.built = fixed, where, built or {}
        self.params: dict[str, Any] = {}
        self.asked: set[str] = set()
        self.problems: list[str] = []

    def _number(self, name: str, value: Any, kind: type) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise WarmStartError(f"{self.where}, column {name}: {value!r} is not a number") from None
        if kind is int and number != math.floor(number):
            raise WarmStartError(f"{self.where}, column {name}: {value!r} is not an integer")
        return kind(number)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.asked.add(name)
        if name not in self.fixed:
            return choices[0]
        match = [c for c in choices if _matches(self._as_built(name, c), self.fixed[name])]
        if not match:
            self.problems.append(f"{name}={self.fixed[name]} is not one of {list(choices)}")
            return choices[0]
        self.params[name] = match[0]
        return match[0]

    def _range(self, name: str, low: Any, high: Any, step: Any, kind: type) -> Any:
        self.asked.add(name)
        if name not in self.fixed:
            return low
        value = self._number(name, self.fixed[name], kind)
        if name in self.built:  # the draw whose built value this is (the smallest, when several round to it)
            step_size = step or 1
            draws = [low + i * step_size for i in range(int((high - low) // step_size) + 1)]
            value = next((d for d in draws if _matches(self._as_built(name, d), value)), value)
        off_step = step is not None and not math.isclose((value - low) / step, round((value - low) / step))
        if not low <= value <= high or off_step:
            self.problems.append(f"{name}={value:g} is outside [{low:g}, {high:g}]"
                                 + (f" step {step:g}" if step not in (None, 1) else ""))
            return low
        self.params[name] = value
        return value

    def _as_built(self, name: str, drawn: Any) -> Any:
        return self.built[name](drawn) if name in self.built else drawn

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._range(name, low, high, step, int)

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        return self._range(name, low, high, step, float)


def expressible(space_name: str, ctx: SpaceContext, start: WarmStart) -> Expressed:
    """Whether space `space_name` (in context `ctx`) can run `start.config` unchanged; its study parameters."""
    from spaces import Space

    config = start.config
    family = config.get("family")
    qualified = space_name == "all"
    fixed = {study_name(family if qualified else None, k): v for k, v in config.items() if k != "family" or qualified}
    where = f"--warm-start {start.label.split(':')[0]} row {start.row}" if start.row else start.label
    built = {}
    if not start.drawn and FS_KEY in config:  # a CSV row: its scaled options as built at its data/fs
        rate = float(config[FS_KEY])
        built = {study_name(family if qualified else None, k): (lambda v, k=k: built_at(k, v, rate, ctx))
                 for k in config if k != FS_KEY}
    trial = _CheckingTrial(fixed, where, built)
    if not qualified and space_name != family:
        return Expressed(reason=f"family {family} is not space {space_name}")
    returned = Space(space_name, ctx)(trial)  # type: ignore[arg-type]  # the space only calls suggest_*
    if trial.problems:
        return Expressed(reason=trial.problems[0])
    for key, value in config.items():
        if study_name(family if qualified else None, key) in trial.asked:
            continue
        if key in returned and key.startswith("optim/"):
            continue  # this run's own settings (epochs, seed, metric): the run decides them, not the config
        if key in returned and not _matches(returned[key], value):
            return Expressed(reason=f"{key}={value} but the space fixes {key}={returned[key]}")
        if key not in returned:
            return Expressed(reason=f"the space does not search {key} (here)")
    return Expressed(params=trial.params)


def resolve(source: str, space_name: str, ctx: SpaceContext) -> tuple[list[tuple[WarmStart, dict[str, Any]]], list[str]]:
    """The warm starts of `source` ("study" or a CSV path) that the space expresses, with their study parameters,
    and one line per config left out (the study's variants of other families are counted, not listed)."""
    starts = study_configs(ctx) if source == "study" else read_configs_csv(Path(source).expanduser())
    kept, lines, other_families = [], [], 0
    for start in starts:
        if source == "study" and space_name != "all" and start.config["family"] != space_name:
            other_families += 1
            continue
        result = expressible(space_name, ctx, start)
        if result.reason is None:
            kept.append((start, result.params))
        else:
            lines.append(f"warm start: skipped {start.label}: {result.reason}")
    lines.append(f"warm start: {len(kept)} of {len(starts)} configurations of {source} fit space {space_name} "
                 f"({'GPU' if ctx.gpu else 'CPU'} sizes, {ctx.length} samples)"
                 + (f"; {other_families} are other families" if other_families else ""))
    return kept, lines
