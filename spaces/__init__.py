"""Search spaces: one define-by-run function per architecture family, plus `all` (family first).

    from spaces import SPACES, SpaceContext, build_space
    space = build_space("ecgnet", SpaceContext(gpu=False, length=2500, max_epochs=6))
    config = space(optuna_trial)        # the trial's whole flat config: sampled values and constants

Every space first samples the input rate `data/fs` (`spaces.rate`: at most the records' rate; sample counts
such as a segmentation scale with it). Parameter names use `/` nesting ("model/width" -> config["model"]["width"]) so a sampled config rebuilds its
model with `ecg.models.create_model(config["family"], ..., **config["model"])`. Space functions do no real
work: they only suggest values. Ranges depend on the hardware (`SpaceContext.gpu`): CPU spaces are smaller.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spaces.all import AllFamilies, RecordingTrial, SpaceFn
from spaces.cnn import ecgnet, resnet, resnext, seresnet
from spaces.context import SpaceContext
from spaces.rate import at_rate, suggest_rate
from spaces.recurrent import gru, hybrid, lstm

if TYPE_CHECKING:  # type hints only: launch.py imports spaces to name them, without optuna's import time
    import optuna

FAMILY_SPACES: dict[str, SpaceFn] = {
    "ecgnet": ecgnet,
    "resnet": resnet,
    "resnext": resnext,
    "seresnet": seresnet,
    "lstm": lstm,
    "gru": gru,
    "hybrid": hybrid,
}
SPACES: dict[str, SpaceFn] = {**FAMILY_SPACES, "all": AllFamilies(FAMILY_SPACES)}


class Space:
    """A space bound to its context: a callable of one Optuna trial that returns the trial's whole flat config
    (every sampled value under the name the trial uses, plus the space's constants).

    The input rate is sampled first, for every space (`spaces.rate`), and the config's sample counts are
    scaled to it. A module-level class, so it pickles: Ray saves the searcher with its space in the experiment state.
    """

    def __init__(self, name: str, ctx: SpaceContext) -> None:
        if name not in SPACES:
            raise ValueError(f"unknown search space {name!r}; known: {', '.join(SPACES)}")
        self.name, self.ctx = name, ctx

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        recorder = RecordingTrial(trial)
        suggest_rate(recorder, self.ctx)
        constants = SPACES[self.name](recorder, self.ctx)
        return at_rate({**recorder.values, **constants}, self.ctx)

    def __repr__(self) -> str:
        return f"Space({self.name!r}, {self.ctx})"


def build_space(name: str, ctx: SpaceContext) -> Space:
    """The space `name` bound to `ctx`, as `OptunaSearch` wants it (see `Space`)."""
    return Space(name, ctx)


def describe(name: str, ctx: SpaceContext, *, n_draws: int = 300) -> list[tuple[str, str]]:
    """(parameter, range) for every parameter of space `name`, conditional ones included.

    The space is run against `n_draws` random Optuna trials of an in-memory study; the union of the
    distributions they record is the space (a categorical branch is reached with probability >= 1/8 per draw
    in every space here, so 300 draws find them all). Constants are listed as "= value".
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    # Ranges are those the study draws, at the records' rate (sample counts scale with data/fs: spaces.rate).
    space = build_space(name, ctx)
    ranges: dict[str, set[str]] = {}
    for _ in range(n_draws):
        trial = study.ask()
        config = space(trial)
        distributions = trial.distributions  # a deep copy at each access: taken once per draw
        for param, dist in distributions.items():
            ranges.setdefault(param, set()).add(_format(dist))
        for key, value in config.items():
            # Sampled values come back too, in `all` under their plain names: list them once, as sampled.
            if key not in distributions and not any(p.endswith("/" + key) for p in distributions):
                ranges.setdefault(key, set()).add(f"= {value}")
        study.tell(trial, 0.0)
    return [(param, " | ".join(sorted(texts))) for param, texts in sorted(ranges.items())]


def _format(dist: optuna.distributions.BaseDistribution) -> str:
    import optuna

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return "{" + ", ".join(str(c) for c in dist.choices) + "}"
    scale = " log" if dist.log else ""
    step = f" step {dist.step:g}" if getattr(dist, "step", None) not in (None, 1) else ""
    return f"[{dist.low:g}, {dist.high:g}]{scale}{step}"


__all__ = ["FAMILY_SPACES", "SPACES", "Space", "SpaceContext", "build_space", "describe"]
