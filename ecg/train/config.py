"""Training configuration: a plain dataclass validated on creation, and the flat form a search and a CSV use.

`TrainConfig` holds what the optimiser and loop need; `TrialConfig` adds the model family and its options.
Flat keys are `family`, `model/<option>`, `optim/<field>` and `data/fs` (the input rate the model is built
for; absent: the records' rate): the names search spaces sample and the columns of a run's best_configs.csv, so a winning row can be read back and retrained (`TrialConfig.from_csv`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ecg import values
from ecg.flat_config import FS_KEY, read_rows
from ecg.selection import SELECTION_METRICS
from ecg.train.optim import LOSS_WEIGHT_ARGUMENT, OPTIMIZERS, SCHEDULES
from ecg.values import convert, is_missing, plain, quote



@dataclass
class TrainConfig:
    """Optimiser, schedule and loop settings of one training run.

    `bf16`: None (the default) means bf16 autocast on CUDA and off on CPU (where it is slower); True or False
    forces it either way on any device. `grad_clip` 0 and `patience` 0 switch clipping and early stopping off.
    `threads` None leaves torch's CPU thread count as it is. `flush_denormals` (CPU only) treats denormal
    floats as zero from the first `fit` on (see `ecg.train.device.set_flush_denormals`). `metric` is the
    selection metric (`ecg.selection`): it picks the epoch kept, and the plateau schedule and early stopping
    watch it; `val_loss` is minimised, every other metric maximised.
    """

    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 30
    schedule: str = "plateau"
    step_milestones: str = "15,22"  # half and three quarters of the default 30 epochs, as the spaces set them
    grad_clip: float = 0.0
    class_weights: str = "log"
    patience: int = 0
    augment: bool = True
    bf16: bool | None = None
    seed: int = 0
    threads: int | None = None
    flush_denormals: bool = True
    metric: str = "val_micro_f1"

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _coerce(f, getattr(self, f.name)))
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        _one_of("optimizer", self.optimizer, tuple(OPTIMIZERS))
        _one_of("schedule", self.schedule, tuple(SCHEDULES))
        _one_of("class_weights", self.class_weights, tuple(LOSS_WEIGHT_ARGUMENT))
        _one_of("metric", self.metric, SELECTION_METRICS)
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0 = no early stopping), got {self.patience}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        self.seed = values.seed(self.seed)
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        self.milestones()  # validates the string

    def milestones(self) -> list[int]:
        """The epochs after which the step schedule multiplies the learning rate by 0.1, ascending."""
        text = str(self.step_milestones).strip()
        try:
            values = [int(v) for v in text.split(",")] if text else []
        except ValueError:
            raise ValueError(f"step_milestones must be comma-separated epochs like '30,60', got "
                             f"{quote(text)}") from None
        if any(v < 1 for v in values) or values != sorted(set(values)):
            raise ValueError(f"step_milestones must be distinct ascending epochs >= 1, got {quote(text)}")
        return values

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {quote(value)}")


# Field type as written in the annotation -> the type its values are converted to.
_FIELD_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    type_text = str(f.type).replace(" ", "")
    if type_text.endswith("|None") and is_missing(plain(value)):
        return None
    try:
        return convert(value, _FIELD_TYPES[type_text.removesuffix("|None")])
    except ValueError as err:
        raise ValueError(f"{f.name} {err}") from None


def _coerce_option(name: str, value: Any, default: Any) -> Any:
    """A model option converted to the type of its default (a CSV column with gaps turns ints into floats)."""
    if default is None:
        return plain(value)
    try:
        return convert(value, type(default))
    except ValueError as err:
        raise ValueError(f"{name} {err}") from None


@dataclass
class TrialConfig:
    """A model family, its options and the training settings: one trial of a search, or one retraining.
    `fs` is the input rate in Hz the model options are for (None: whatever rate the records have)."""

    family: str
    model: dict[str, Any] = field(default_factory=dict)
    optim: TrainConfig = field(default_factory=TrainConfig)
    fs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(f"family must be a model family name, got {quote(self.family)}")
        if self.fs is not None:
            self.fs = _coerce_option(FS_KEY, self.fs, 0)
            if self.fs < 1:
                raise ValueError(f"{FS_KEY} must be a positive number of Hz, got {self.fs}")
        if isinstance(self.optim, Mapping):
            self.optim = TrainConfig(**self.optim)
        self.model = {k: plain(v) for k, v in self.model.items()}

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any], *, option_defaults: Mapping[str, Any] | None = None) -> "TrialConfig":
        """From `{"family": ..., "model/<option>": ..., "optim/<field>": ...}`; other keys (trial ids, metrics)
        are ignored, missing values (empty CSV cells: options another family sampled) are dropped.

        `option_defaults` (normally `ecg.models.model_options(family)`, looked up when omitted and available)
        gives each model option its type, since a CSV column with gaps reads integers back as floats.
        """
        if "family" not in flat or is_missing(flat["family"]):
            raise ValueError("a flat trial config needs a 'family' key")
        family = str(flat["family"])
        if option_defaults is None:
            option_defaults = _model_option_defaults(family)
        model: dict[str, Any] = {}
        optim: dict[str, Any] = {}
        fs = plain(flat.get(FS_KEY))
        known_fields = {f.name for f in fields(TrainConfig)}
        for key, value in flat.items():
            prefix, _, name = str(key).partition("/")
            if prefix not in ("model", "optim") or not name:
                continue
            if prefix == "optim" and name not in known_fields:
                raise ValueError(f"unknown training setting {quote(key)}; known: {', '.join(sorted(known_fields))}")
            if is_missing(plain(value)) and not (prefix == "optim" and name in ("bf16", "threads")):
                continue
            if prefix == "model":
                model[name] = _coerce_option(key, value, option_defaults.get(name))
            else:
                optim[name] = plain(value)
        try:
            settings = TrainConfig(**optim)
        except ValueError as err:  # "lr must be ...": named as the column is, optim/lr
            raise ValueError(f"optim/{err}" if str(err).split(" ", 1)[0] in known_fields else str(err)) from None
        return cls(family=family, model=model, optim=settings, fs=None if is_missing(fs) else fs)

    @classmethod
    def from_nested(cls, config: Mapping[str, Any]) -> "TrialConfig":
        """From Ray Tune's form of a flat config (`{"family": ..., "model": {...}, "optim": {...}}`)."""
        return cls.from_flat(flatten(config))

    def build_model(self, *, n_leads: int, n_classes: int, length: int) -> Any:
        """The family's model with these options, for inputs `[B, n_leads, length]` (`ecg.models.create_model`)."""
        from ecg.models import create_model  # here: the config module itself does not need torch

        return create_model(self.family, n_leads=n_leads, n_classes=n_classes, length=length, **self.model)

    def to_flat(self) -> dict[str, Any]:
        """The inverse of `from_flat`: one flat dict, ready to become a CSV row."""
        flat: dict[str, Any] = {"family": self.family}
        flat.update({f"model/{k}": v for k, v in self.model.items()})
        flat.update({f"optim/{k}": v for k, v in self.optim.to_dict().items()})
        if self.fs is not None:
            flat[FS_KEY] = self.fs
        return flat

    @classmethod
    def from_csv(cls, path: str | Path, row: int = 0) -> "TrialConfig":
        """Row `row` (0-based, in file order) of a best_configs.csv / trials.csv / config.csv.

        Cells are read as the text they hold: an empty cell is a value the row's trial did not sample (another
        family's model option) and keeps its default, but text that is not a value of the setting's type
        ('nan', 'inf', 'abc' in a numeric column) is refused, and so is an empty training setting other than
        the optional `optim/bf16` and `optim/threads` (every trial of a search has them all): a ValueError
        naming the file, the line and the column.
        """
        path = Path(path)
        rows = read_rows(path)
        if not 0 <= row < len(rows):
            raise ValueError(f"{path}: row {row} does not exist (the file has {len(rows)} rows)")
        cells = rows[row]
        where = f"{path}, row {row} (line {row + 2})"
        required = {f.name for f in fields(TrainConfig)} - {"bf16", "threads"}
        for key, text in cells.items():
            prefix, _, name = key.partition("/")
            if prefix == "optim" and name in required and not text:
                raise ValueError(f"{where}: {key} is empty; give it a value or leave the column out for the "
                                 f"default ({getattr(TrainConfig, name)!r})")
        try:
            return cls.from_flat(cells)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config (Ray Tune unflattens "model/width" into config["model"]["width"]) back to flat keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}/"))
        else:
            flat[name] = value
    return flat


def _model_option_defaults(family: str) -> dict[str, Any]:
    """`ecg.models.model_options(family)` when the models package is importable, else no type hints."""
    try:
        from ecg.models import model_options
    except ImportError:
        return {}
    try:
        return dict(model_options(family))
    except (KeyError, ValueError):
        return {}
