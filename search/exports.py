"""What a search leaves behind, read from Ray's experiment: one row per trial, one row per trial-epoch, the
top-k configs, as frames that `ecg.run_folder.RunFolder` writes (atomically) into the run folder."""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ecg.run_folder import read_run_csv
from ecg.train.config import flatten
from search.trial_failures import FATAL_FILE, trial_number

# Metrics that `ecg.train.fit` reports each epoch and that trials.csv summarises as best_* and last_*.
SUMMARY_METRICS = ("val_micro_f1", "val_macro_f1", "val_loss", "train_loss", "val_micro_precision",
                   "val_micro_recall", "val_exact_match", "val_macro_auc")
# ... and those only some data defines (CinC 2021's Challenge score), summarised where the trial reported them.
TASK_METRICS = ("val_challenge_score",)
# Costs each trial reports once (ecg.train.costs), as trials.csv columns.
COST_METRICS = ("params", "macs", "latency_ms_b1", "latency_ms_b64")
# A trial created just before a search stopped has no result yet: Ray's ExperimentAnalysis (ours, and the one
# Tuner.fit returns) warns about each, and trials.csv's row says so anyway (no epochs).
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
# Ray's own bookkeeping columns that epochs.csv leaves out.
RAY_COLUMNS = {"timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "time_this_iter_s",
               "time_total_s", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
               "date", "trial_id", "training_iteration", "config"}


@dataclass
class TrialRecord:
    """One trial as the exports see it, read from Ray's experiment folder."""

    trial_id: str
    number: int  # the number in its folder's name: the study's trial number (from 0; Ray's count, from 1, before)
    status: str
    config: dict[str, Any]  # flat: family, model/..., optim/...
    epochs: pd.DataFrame  # one row per epoch (the last attempt's row where a retry repeated an epoch)
    failures: int = 0
    error: str | None = None
    path: Path | None = None
    checkpoint: Path | None = None

    @property
    def over_budget(self) -> str | None:
        """Why the trial was rejected before training (`search.trainable.OVER_BUDGET`), or None."""
        if "over_budget" not in self.epochs:
            return None
        reasons = self.epochs["over_budget"].dropna()
        return str(reasons.iloc[-1]) if len(reasons) else None

    @property
    def epochs_run(self) -> int:
        return int(self.epochs["epoch"].max()) if len(self.epochs) else 0

    def values(self, column: str) -> dict[int, float]:
        """epoch -> `column`'s value, for the epochs that reported one."""
        if column not in self.epochs:
            return {}
        known = self.epochs.dropna(subset=[column])
        return {int(e): float(v) for e, v in zip(known["epoch"], known[column])}

    def best(self, metric: str, mode: str) -> pd.Series | None:
        if metric not in self.epochs or self.epochs[metric].isna().all():
            return None
        column = self.epochs[metric]
        return self.epochs.loc[column.idxmax() if mode == "max" else column.idxmin()]

    def best_value(self, metric: str, mode: str) -> float:
        row = self.best(metric, mode)
        return float(row[metric]) if row is not None else math.nan


@dataclass
class TrialTable:
    records: list[TrialRecord] = field(default_factory=list)

    def ranked(self, metric: str, mode: str) -> list[TrialRecord]:
        """Trials with at least one reported epoch, best first by their best `metric`."""
        scored = [r for r in self.records if not math.isnan(r.best_value(metric, mode))]
        return sorted(scored, key=lambda r: r.best_value(metric, mode), reverse=(mode == "max"))

def stopped_early(epochs_run: int, max_epochs: int) -> bool:
    """Whether a trial that ended without an error stopped before its epoch budget (ASHA, or fit's own
    early stopping): what the tuner tells Optuna as PRUNED, the console and trials.csv report."""
    return epochs_run < max_epochs


def _last_error(error_file: Path | None) -> str | None:
    """The last failure's message from Ray's error.txt (the exception's final line)."""
    if error_file is None or not error_file.exists():
        return None
    text = error_file.read_text(errors="replace").strip()
    last = text.rsplit("Failure #", 1)[-1]
    lines = [line.strip() for line in last.splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


def read_trials(experiment_path: Path) -> TrialTable:
    """Every trial of the Ray experiment at `experiment_path`, with its per-epoch results."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(experiment_path))
    records = []
    for trial in analysis.trials:
        trial_dir = Path(trial.path) if trial.path else None
        epochs = _read_progress(trial_dir / "progress.csv") if trial_dir else pd.DataFrame()
        checkpoint = None
        if trial.checkpoint is not None:
            checkpoint = Path(trial.checkpoint.path)
        error = None
        if trial_dir is not None and (trial_dir / FATAL_FILE).exists():
            error = json.loads((trial_dir / FATAL_FILE).read_text())["reason"]
        if error is None and trial_dir is not None:
            error = _last_error(trial_dir / "error.txt")
        records.append(TrialRecord(
            trial_id=trial.trial_id,
            number=trial_number(trial_dir.name, trial.trial_id) if trial_dir else 0,
            status=str(trial.status),
            config=flatten(trial.config),
            epochs=epochs,
            failures=int(trial.run_metadata.num_failures),
            error=error,
            path=trial_dir,
            checkpoint=checkpoint,
        ))
    records.sort(key=lambda r: (r.number, r.trial_id))
    return TrialTable(records)


def _read_progress(path: Path) -> pd.DataFrame:
    """Ray's progress.csv; a retry appends the epochs it repeats, and the last attempt's row wins."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["epoch"])
    frame = read_run_csv(path)
    if "epoch" not in frame:
        return pd.DataFrame(columns=["epoch"])
    frame = frame.dropna(subset=["epoch"])
    frame["epoch"] = frame["epoch"].astype(int)
    return frame.drop_duplicates(subset="epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def trials_frame(table: TrialTable, *, metric: str, mode: str, max_epochs: int, scheduler: str,
                 optuna_numbers: dict[str, int] | None = None,
                 warm_starts: dict[str, str] | None = None,
                 budget_stopped: frozenset[str] = frozenset()) -> pd.DataFrame:
    """trials.csv: one row per trial. `trial_number` is the number in the trial's folder name, which is its
    number in the study (optuna-dashboard's "Trial N") and TensorBoard's run name; a run from before numbered its
    folders by Ray's count, and its trials.csv has the study's number beside it (`optuna_trial_number`, written
    only where the two differ). A trial rejected before training has status OVER_BUDGET and the reason in
    `over_budget`; `warm_start` names the configuration a warm-started trial ran (empty for sampled ones); the
    trials in `budget_stopped` (`search.budget`) ended when --time-budget ran out, not by ASHA."""
    rows = []
    optuna_numbers, warm_starts = optuna_numbers or {}, warm_starts or {}
    for record in table.records:
        epochs_run = record.epochs_run
        finished = record.status == "TERMINATED"
        by_budget = finished and record.trial_id in budget_stopped and stopped_early(epochs_run, max_epochs)
        by_asha = (finished and scheduler == "asha" and stopped_early(epochs_run, max_epochs)
                   and not record.over_budget and not by_budget)
        errored = record.status == "ERROR"
        row: dict[str, Any] = {
            "trial_id": record.trial_id,
            "trial_number": record.number,
            "optuna_trial_number": optuna_numbers.get(record.trial_id),
            "status": "OVER_BUDGET" if record.over_budget and record.status == "TERMINATED" else record.status,
            "over_budget": record.over_budget,
            "warm_start": warm_starts.get(record.trial_id, ""),
            "epochs_run": epochs_run,
            "stopped_by_asha": by_asha,
            "stopped_at_epoch": epochs_run if by_asha or by_budget else None,
            "stopped_by_budget": by_budget,
            "failures": record.failures,
            # Every failure but the one that ended an errored trial was followed by a retry.
            "retries": max(0, record.failures - 1) if errored else record.failures,
            "error": record.error if (errored or record.failures) else None,
        }
        row.update(record.config)
        best = record.best(metric, mode)
        row["best_epoch"] = int(best["epoch"]) if best is not None else None
        summarised = SUMMARY_METRICS + tuple(m for m in TASK_METRICS if m in record.epochs)
        for name in summarised:
            row[f"best_{name}"] = float(best[name]) if best is not None and name in best else None
        last = record.epochs.iloc[-1] if len(record.epochs) else None
        for name in summarised:
            row[f"last_{name}"] = float(last[name]) if last is not None and name in last else None
        row["train_time_s"] = float(record.epochs["epoch_time_s"].sum()) if "epoch_time_s" in record.epochs else None
        row.update(_costs(record.epochs))
        row.update(_placement(record.epochs))
        row.update(_input(record.epochs))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame) and all(pd.isna(o) or o == n for n, o in zip(frame["trial_number"], frame["optuna_trial_number"])):
        frame = frame.drop(columns="optuna_trial_number")  # one number: the study's
    for column in ("stopped_at_epoch", "best_epoch", "optuna_trial_number", "params", "macs", "input_fs",
                   "input_length"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")  # integers with gaps, not floats
    return frame


def _costs(epochs: pd.DataFrame) -> dict[str, float | None]:
    """The costs a trial reported (`ecg.train.costs.CostMeter`): the model's once, the peak memory each epoch."""
    out: dict[str, float | None] = {}
    for name in COST_METRICS:
        values = epochs[name].dropna() if name in epochs else pd.Series(dtype=float)
        out[name] = float(values.iloc[-1]) if len(values) else None
    out["peak_mem_mb"] = float(epochs["peak_mem_mb"].max()) if "peak_mem_mb" in epochs else None
    return out


def _placement(epochs: pd.DataFrame) -> dict[str, str | None]:
    """Where the trial's last epoch ran: `gpu_ids` (what ray.get_gpu_ids() gave it, "0,1" for two, empty
    without a GPU share) and `device` (what it trained on: a GPU share without CUDA trains on the CPU)."""
    out: dict[str, str | None] = {}
    for name in ("gpu_ids", "device"):
        value = epochs[name].iloc[-1] if name in epochs and len(epochs) else None
        if value is None:
            out[name] = None  # a trial that reported nothing, or one from before these columns
        elif pd.isna(value):
            out[name] = ""  # progress.csv reads an empty id list back as NaN
        else:
            # ... and a single id "0" as the number 0 (or 0.0 when another trial's row was "0,1")
            out[name] = str(value) if isinstance(value, str) else str(int(value))
    return out


def _input(epochs: pd.DataFrame) -> dict[str, int | None]:
    """The input the trial trained on, as it reported it: rate (Hz) and samples per record."""
    out: dict[str, int | None] = {}
    for name in ("input_fs", "input_length"):
        values = epochs[name].dropna() if name in epochs else pd.Series(dtype=float)
        out[name] = int(values.iloc[-1]) if len(values) else None
    return out


def search_constants(table: TrialTable, sampled: set[str]) -> dict[str, Any]:
    """The config entries no trial sampled (`sampled`: the study's parameter names), the same in every trial:
    the space's constants, e.g. `optim/epochs`, `optim/seed`."""
    if not table.records:
        return {}
    keys = set.intersection(*(set(r.config) for r in table.records))
    return {k: table.records[0].config[k] for k in sorted(keys - sampled)
            if all(same_value(r.config[k], table.records[0].config[k]) for r in table.records)}


def same_value(a: Any, b: Any) -> bool:
    """Equal as config values: floats within rounding, anything else exactly."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b


def epochs_frame(table: TrialTable) -> pd.DataFrame:
    """epochs.csv: long form, one row per trial and epoch, every metric the trial reported."""
    frames = []
    for record in table.records:
        if not len(record.epochs):
            continue
        metrics = [c for c in record.epochs.columns if c not in RAY_COLUMNS and c != "epoch"
                   and not c.startswith("config/")]
        frame = record.epochs[["epoch", *metrics]].copy()
        frame.insert(0, "trial_id", record.trial_id)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial_id", "epoch"])


def best_configs_frame(winners: list[TrialRecord], *, metric: str, mode: str) -> pd.DataFrame:
    """best_configs.csv: the top-k configs, flat (`family`, `model/...`, `optim/...`) as `ecg.train` reads
    them back (`python -m ecg.train --config-csv best_configs.csv`), with the trial id and its best score."""
    rows = []
    for rank, record in enumerate(winners, start=1):
        best = record.best(metric, mode)
        costs = _costs(record.epochs)
        rows.append({"rank": rank, "trial_id": record.trial_id, f"best_{metric}": record.best_value(metric, mode),
                     "best_epoch": int(best["epoch"]) if best is not None else None,
                     "params": int(costs["params"]) if costs["params"] is not None else None,
                     **record.config})
    if not rows:  # no winner (every trial over the budget, or none finished): the header, so the file still reads
        return pd.DataFrame(columns=["rank", "trial_id", f"best_{metric}", "best_epoch", "params"])
    return pd.DataFrame(rows)
