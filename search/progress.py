"""What a search prints while it runs: where to watch it, a compact status, one line per finished trial.

Ray Tune's own console output (`-v`) prints every trial's full config and a table at every step: about 65
lines a trial. By default the search runs Tune silently (`verbose=0`) and `SearchProgress`, a Tune
`Callback`, prints instead a status of the running trials at most every `STATUS_EVERY_S` seconds, one line
per finished trial, and `summary` prints the outcome. On a terminal the status is redrawn in place; in a
file or a pipe (a log, `ray job logs`) it is appended as plain text, with no ANSI codes.

Each trial also prints to its own worker log (the Ray dashboard's STDOUT of the actor that runs it) a line when
it starts, one per epoch (`epoch_line`) and one when it ends, each naming it by `trial_label`: with
`reuse_actors` one actor runs many trials one after another, and these lines tell them apart.
"""
from __future__ import annotations

import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import IO, Any, Sequence

from ray.tune import Callback

from search import budget
from search.exports import stopped_early
from search.trial_failures import trial_number

STATUS_EVERY_S = 30.0  # a file or a pipe: one status block at most this often, and only when it changed
REDRAW_EVERY_S = 5.0  # a terminal: the status is redrawn in place, so it can be refreshed often at no cost
# What an epoch line and the status show, besides the selection metric, when the trial reports them.
SHOWN_METRICS = ("val_micro_f1", "val_macro_f1", "val_macro_auc", "val_loss", "train_loss")


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it is below it (as a user would type it), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def watch_lines(dashboard: str | None, study_db: Path, experiment: Path, *, joined: bool) -> list[str]:
    """What the search prints at start: the three live views and, where Ray asks for one, how to log in.

    `joined`: the search joined a cluster (`--address`), whose token lives on its head node.
    """
    lines = []
    if dashboard:
        lines.append(f"Ray dashboard: {dashboard}")
        if _token_auth():
            where = "on the head node" if joined else "with this environment active"
            lines.append(f"  it asks for a token: paste what `ray get-auth-token` prints {where} "
                         f"(or the contents of {_token_path()})")
    lines.append(f"Optuna study:  optuna-dashboard {shlex.quote('sqlite:///' + shown_path(study_db))}")
    lines.append(f"TensorBoard:   tensorboard --logdir {shlex.quote(shown_path(experiment))}")
    return lines


def _token_auth() -> bool:
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        return is_token_auth_enabled()
    except ImportError:  # a Ray without token authentication
        return False


def _token_path() -> str:
    from search.cluster import token_file

    return str(token_file()).replace(str(Path.home()), "~", 1)


def _number(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(value) else f"{value:.4f}"


def trial_label(trial_id: str, number: int | None = None) -> str:
    """How the lines of a search name a trial: its Ray id and its number (in the study, trials.csv and its folder
    under tune/), e.g. `trial 5cdbd8cc (number 3)`."""
    return f"trial {trial_id}" if number is None else f"trial {trial_id} (number {number})"


def epoch_line(label: str, epoch: int, epochs: int, metrics: dict[str, float], metric: str, best: float) -> str:
    """One epoch of one trial, as its worker log shows it: the trial (`trial_label`), epoch, the metrics, the best
    so far."""
    shown = [name for name in (metric, *SHOWN_METRICS) if name in metrics]
    values = " ".join(f"{name} {_number(metrics[name])}" for name in dict.fromkeys(shown))
    return f"{label} epoch {epoch}/{epochs}: {values} | best {metric} so far {_number(best)}"


class SearchProgress(Callback):
    """Ray Tune callback printing a compact status and one line per finished trial (see the module docstring).

    `metric` is the selection metric (`val_micro_f1`), `trial_metric` what ASHA compares (its best so far).
    Pickled into tuner.pkl with the other callbacks, so a resumed search prints the same way; the stream is
    not pickled (sys.stdout is looked up again).
    """

    def __init__(self, metric: str, trial_metric: str, mode: str, max_epochs: int, *, asha: bool = True,
                 stream: IO[str] | None = None, tty: bool | None = None) -> None:
        self.metric, self.trial_metric, self.mode, self.max_epochs = metric, trial_metric, mode, max_epochs
        self.asha = asha  # whether a trial that ends before max_epochs was stopped by ASHA (else: early stopping)
        self._stream, self._tty = stream, tty
        self._last_status, self._last_text, self._drawn = -math.inf, "", 0
        self._started = time.monotonic()

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def tty(self) -> bool:
        if self._tty is None:
            isatty = getattr(self.stream, "isatty", None)
            self._tty = bool(isatty and isatty())
        return self._tty

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_stream=None, _tty=None, _last_status=-math.inf, _last_text="", _drawn=0)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._started = time.monotonic()

    # Ray Tune's hooks
    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_status < (REDRAW_EVERY_S if self.tty else STATUS_EVERY_S):
            return
        text = self.status(trials, now - self._started)
        if not self.tty and text.partition("] ")[2] == self._last_text.partition("] ")[2]:
            return  # nothing changed but the clock: a log file gets nothing new
        self._last_status, self._last_text = now, text
        self._draw(text)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(self.finished_line(trial))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._print(self.finished_line(trial, error=True))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        failures = trial.run_metadata.num_failures
        self._print(f"trial {trial.trial_id} failed (attempt {failures}): {_error(trial)}; retrying from its "
                    f"last checkpoint")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._erase()

    # What is printed
    def _best(self, trial: Any) -> tuple[float, int | None]:
        """The trial's best selection metric and its epoch, from its last result (best so far is reported)."""
        result = trial.last_result or {}
        return float(result.get(self.trial_metric, math.nan)), result.get("training_iteration")

    def status(self, trials: Sequence[Any], elapsed_s: float) -> str:
        """The status block: one line of counts and the best trial, then one line per running trial."""
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        order = ("RUNNING", "PENDING", "PAUSED", "TERMINATED", "ERROR")
        parts = [f"{counts[s]} {s.lower()}" for s in order if counts.get(s)]
        scored = [(self._best(t)[0], t) for t in trials if not math.isnan(self._best(t)[0])]
        head = f"[{_clock(elapsed_s)}] {', '.join(parts) or 'no trials yet'}"
        if scored:
            value, best = (max if self.mode == "max" else min)(scored, key=lambda pair: pair[0])
            head += f"; best {self.metric} {value:.4f} (trial {best.trial_id})"
        left = budget.left_s()
        if left is not None:
            head += f"; time budget left {_clock(left)}"
        lines = [head]
        for trial in trials:
            if trial.status == "RUNNING":
                result = trial.last_result or {}
                if "training_iteration" not in result:
                    lines.append(f"  {trial.trial_id}  {_family(trial):8s} starting")
                    continue
                lines.append(f"  {trial.trial_id}  {_family(trial):8s} epoch {result['training_iteration']}/"
                             f"{self.max_epochs}  {self.metric} {_number(result.get(self.metric))}  "
                             f"best {_number(result.get(self.trial_metric))}")
        return "\n".join(lines)

    def finished_line(self, trial: Any, error: bool = False) -> str:
        """`trial <id> <family>: <n> epochs, best <metric> <v> (epoch <e>), <how it ended>`."""
        result = trial.last_result or {}
        epochs = int(result.get("training_iteration", 0) or 0)
        best = _number(result.get(self.trial_metric))
        label = trial_label(trial.trial_id, _folder_number(trial))
        if error:
            ended = f"error: {_error(trial)}"
        elif result.get("over_budget"):  # search.trainable.OVER_BUDGET: rejected before training
            return f"{label} {_family(trial)}: over budget ({result['over_budget']}), not trained"
        elif stopped_early(epochs, self.max_epochs):
            ended = f"stopped by ASHA at epoch {epochs}" if self.asha else f"stopped early at epoch {epochs}"
        else:
            ended = "complete"
        return (f"{label} {_family(trial)}: {epochs} epoch{'s' * (epochs != 1)}, "
                f"best {self.metric} {best}, {ended}")

    # Output
    def _erase(self) -> None:
        """On a terminal, remove the status block drawn last (it is redrawn below what is printed next)."""
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        self._drawn = 0

    def _draw(self, text: str) -> None:
        self._erase()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = text.count("\n") + 1 if self.tty else 0

    def _print(self, line: str) -> None:
        redraw = self.tty and self._drawn
        self._erase()
        self.stream.write(line + "\n")
        if redraw:
            self._draw(self._last_text)
        self.stream.flush()


def _folder_number(trial: Any) -> int | None:
    """The trial's number, from its folder's name (`search.tuner.trial_dirname`); None before it has one."""
    name = str(getattr(trial, "relative_logdir", None) or "")
    return trial_number(name, trial.trial_id) if f"_{trial.trial_id}_" in name else None


def _family(trial: Any) -> str:
    return str((trial.config or {}).get("family", "?"))


def _error(trial: Any) -> str:
    """The last line of the trial's error (Ray keeps the traceback in the trial's error.txt)."""
    text = ""
    path = getattr(trial, "error_file", None) or ""
    if path and os.path.exists(path):
        text = Path(path).read_text(errors="replace")
    lines = [line.strip() for line in text.rsplit("Failure #", 1)[-1].splitlines() if line.strip()]
    return lines[-1][:200] if lines else "see the trial's error.txt"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def summary(info: dict[str, Any], trials: Any) -> list[str]:
    """The closing lines: wall time, trials by outcome, the chosen model (from run.json's `info` and the
    trials.csv frame)."""
    outcome = {"complete": 0, "stopped by ASHA": 0, "stopped by the time budget": 0, "over budget": 0, "error": 0}
    for row in trials.itertuples():
        key = ("error" if row.status == "ERROR" else "over budget" if row.status == "OVER_BUDGET"
               else "stopped by ASHA" if bool(getattr(row, "stopped_by_asha", False))
               else "stopped by the time budget" if bool(getattr(row, "stopped_by_budget", False)) else "complete")
        outcome[key] += 1
    lines = [f"search finished in {_clock(info.get('wall_time_s', 0.0))}: {len(trials)} trials ("
             + ", ".join(f"{n} {what}" for what, n in outcome.items() if n) + ")"]
    chosen = info.get("chosen_model")
    if chosen:
        trial = chosen.get("trial_id")
        lines.append(f"chosen model: {chosen['model']} with {chosen['thresholds']} thresholds"
                     + (f" (trial {trial})" if isinstance(trial, str) and trial else ""))
    return lines
