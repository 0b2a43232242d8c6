"""What TensorBoard shows of a search: per trial (one run, named after the trial's folder), the metrics that
change from epoch to epoch, the search metric first, and the trial's sampled values and model size as HPARAMS.

Ray Tune adds its own TensorBoard logger unless one is given; it logs every number of every result under
`ray/tune/`: its bookkeeping (`done`, `training_iteration`, `time_*`), and values that are the same at every
epoch of a trial (`params`, `macs`, `input_fs`), which pushed the search metric to the second page. Given this
one (`EpochTensorBoard`, a `TBXLoggerCallback`), Ray adds none, and keeps its CSV and JSON loggers, which the
exports read (progress.csv).

Tags (TensorBoard orders the groups by name, the part before the `/`):
- `search/<metric>` and `search/<metric>_best_so_far`: the selection metric and the best so far (what ASHA and
  the sampler compare);
- `training/...`: `train_loss`, `lr`, `epoch_time_s`, `peak_mem_mb`;
- `validation/...`: every other validation metric (`val_loss`, `val_macro_f1`, ...).
"""
from __future__ import annotations

import math
from numbers import Number
from typing import Any

from ray.tune.logger import TBXLoggerCallback

from ecg.train.config import flatten

# Per-epoch values that are not validation metrics (`ecg.train.fit`'s and the trainable's).
TRAINING = ("train_loss", "lr", "epoch_time_s", "peak_mem_mb")
# Values a trial reports with every epoch that describe its model: HPARAMS beside its sampled values.
MODEL = ("params", "macs", "latency_ms_b1", "input_length")
BEST_SUFFIX = "_best_so_far"

# Ray trial id -> the config names its study trial sampled, noted by the searcher as it proposes the trial (in the
# driver, where this callback runs): the HPARAMS of the trial. A trial not noted (a resumed run's) shows its whole
# config.
_sampled: dict[str, list[str]] = {}


def note_sampled(trial_id: str, names: list[str]) -> None:
    _sampled[trial_id] = list(names)


def epoch_scalars(result: dict[str, Any], metric: str, trial_metric: str) -> dict[str, float]:
    """The tags and values of one epoch's result, in the order above; NaN values (a trial rejected over budget)
    and everything else left out."""
    def number(key: str) -> float | None:
        value = result.get(key)
        if isinstance(value, bool) or not isinstance(value, Number) or math.isnan(float(value)):
            return None
        return float(value)

    tags: dict[str, float | None] = {f"search/{metric}": number(metric),
                                     f"search/{metric}{BEST_SUFFIX}": number(trial_metric)}
    tags.update({f"training/{key}": number(key) for key in TRAINING})
    tags.update({f"validation/{key}": number(key) for key in sorted(result)
                 if key.startswith("val_") and key != metric})
    return {tag: value for tag, value in tags.items() if value is not None}


def trial_hparams(config: dict[str, Any], sampled: list[str] | None, result: dict[str, Any]) -> dict[str, Any]:
    """The trial's HPARAMS: its sampled values as its model was built (`config`; every entry when `sampled` is
    unknown) and its model's size from its last result."""
    names = sampled if sampled is not None else sorted(config)
    values: dict[str, Any] = {}
    for name in names:
        value = config.get(name)
        if isinstance(value, (bool, str, int, float)):
            values[name] = value
        elif value is not None:
            values[name] = str(value)
    for key in MODEL:
        if isinstance(result.get(key), Number) and not math.isnan(float(result[key])):
            values[key] = float(result[key])
    return values


def loggers(metric: str, trial_metric: str) -> list[TBXLoggerCallback]:
    """`[EpochTensorBoard(...)]`, or none without tensorboardX (Ray then warns, and the search goes on)."""
    try:
        return [EpochTensorBoard(metric, trial_metric)]
    except ImportError:
        return []


class EpochTensorBoard(TBXLoggerCallback):
    """Ray Tune's TensorBoard logger, writing only `epoch_scalars` and, when the trial ends, `trial_hparams` (see
    the module docstring). Pickled with the tuner (its writers are not: Ray opens them again on a resume)."""

    def __init__(self, metric: str, trial_metric: str) -> None:
        super().__init__()
        self.metric, self.trial_metric = metric, trial_metric
        self._last: dict[Any, dict[str, Any]] = {}

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer = self._trial_writer[trial]
        step = int(result.get("training_iteration") or iteration)
        scalars = epoch_scalars(result, self.metric, self.trial_metric)
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=step)
        self._trial_result[trial] = scalars
        self._last[trial] = result
        writer.flush()

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial not in self._trial_writer:
            return
        scalars = self._trial_result.pop(trial, {})
        result = self._last.pop(trial, {})
        if scalars:
            from tensorboardX.summary import hparams

            config = flatten(trial.config or {})
            metrics = {tag: value for tag, value in scalars.items() if tag.startswith("search/")}
            for summary in hparams(trial_hparams(config, _sampled.get(trial.trial_id), result), metrics):
                self._trial_writer[trial].file_writer.add_summary(summary)
        self._trial_writer.pop(trial).close()

    def __getstate__(self) -> dict[str, Any]:
        return {"metric": self.metric, "trial_metric": self.trial_metric}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["metric"], state["trial_metric"])

