"""Search efficiency, side by side on the built-in synthetic set: ASHA against full training (FIFO), TPE against
random sampling, Ray's overhead, trial start-up and trials per hour at 1 and 2 concurrent trials (issue 7).

    python bench/bench_search.py            # full mode: 24 trials per search; ~20 min on a quiet 2-core machine
    python bench/bench_search.py --smoke    # every section at toy size, one Ray for all (~1.5 min); figures are noise
    python bench/bench_search.py --device cuda   # also 1, 2 and 4 trials per GPU, nvidia-smi sampled

Every search is `search.run(SearchOptions(...))` (what `launch.py` runs), same space, data, seed and trial
count; the bench reads the run folder's trials.csv, best_configs.csv and split.csv, and Ray's own per-trial
timings (`ExperimentAnalysis`: when each trial's actor was up; progress.csv: `time_total_s`, `time_this_iter_s`
next to the trial's own `epoch_time_s`). Ray start (`ray_start_s`) and the search's wall time
(`fit_time_s`, Tuner.fit alone) come from run.json.

Sections and targets (figures printed, written as CSV under --out, curves as PNG, plus a README.md there):
  1. ASHA vs FIFO: trial-epochs, wall time, best val micro-F1; each winner retrained to the full epoch budget
     with `ecg.train.fit` (no Ray, same split) and scored on validation. Twice: with the random sampler, whose
     seeded draws ignore results, so ASHA and FIFO try the same configs and only early stopping differs (the
     targets are judged on this pair); and with TPE, what launch.py runs (reported: ASHA changes what TPE
     learns from, so the two searches soon try different configs and the gap mixes in the sampler's luck).
     Targets: ASHA trial-epochs <= 35% of FIFO's; retrained ASHA winner within 0.01 micro-F1 of FIFO's.
     1b: Spearman rho, over all FIFO trials, of the F1 at each epoch (the epoch's own, and the best so far,
     which the rungs compare) with the trial's final best. 1c: ASHA replayed on those FIFO trials for 300
     resampled searches, per grace period and reduction factor: trial-epoch ratio and how often the winner
     survives. That is how the default rungs were chosen.
  2. TPE vs random (FIFO both, same budget): best F1 after each number of trials.
  3. Ray overhead: Tuner.fit wall time / (sum of trial compute / concurrency) - 1, trial compute being the
     epochs' own `epoch_time_s`; for ~10 s trials (epochs calibrated from section 2's random search) and
     ~60 s trials (as many epochs, on proportionally more records).
     Targets <= 10% and <= 3%.
  4. Trial start: from the moment a trial's slot is free (Tuner.fit start, or the previous occupant's last
     report) to its first training step, split into Ray's part (actor up) and the trainable's set-up.
     Target <= 3 s.
  5. Concurrency: trials per hour with 1 and 2 concurrent CPU trials (the same ~10 s trials); with a GPU,
     also 1, 2 and 4 trials per GPU (fractional GPUs) with GPU utilisation sampled by nvidia-smi.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ecg.run_folder import BEST_CONFIGS, SPLIT, TRIALS, RunFolder  # noqa: E402
from search_analysis import (  # noqa: E402  (bench/ on the path first)
    METRIC, WINNER_F1_GAP, best_at, best_so_far_by_trial_epochs, best_so_far_by_trials, epochs_for, mean_epoch_s,
    overhead, parse_nvidia_smi, rank_correlation, resampled_replays, trial_curves,
    trial_start_times, trials_per_hour)

REPLAY_DRAWS = 300  # resampled searches per setting in section 1c
TARGETS = {"asha_epoch_ratio": 0.35, "retrained_f1_gap": WINNER_F1_GAP, "overhead_short": 0.10, "overhead_long": 0.03,
           "trial_start_s": 3.0}


# ----------------------------------------------------------------------------------------------------------
# Running one search and reading what it left
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shared:
    """What every search of one bench run has in common."""

    space: str
    records: int
    seed: int
    grace_period: int
    reduction_factor: int
    cpus_per_trial: float
    gpus: int  # GPUs on this machine the bench may use (0: CPU only)
    work_dir: Path


@dataclass(frozen=True)
class Spec:
    """One search: the knobs that differ between the bench's searches."""

    scheduler: str
    sampler: str
    trials: int
    epochs: int
    concurrency: int
    gpus_per_trial: float = 0.0
    records: int | None = None  # None: the bench's --records
    grace_period: int | None = None  # None: the bench's --grace-period

    @property
    def name(self) -> str:
        where = f"{self.gpus_per_trial:g}gpu" if self.gpus_per_trial else "cpu"
        size = f"-{self.records}rec" if self.records else ""
        rungs = f"-grace{self.grace_period}" if self.grace_period else ""
        return (f"{self.scheduler}-{self.sampler}-{self.trials}x{self.epochs}ep{size}{rungs}-c{self.concurrency}-"
                f"{where}")


@dataclass
class Search:
    """A finished search, as the bench uses it."""

    spec: Spec
    run_dir: Path
    ray_start_s: float
    fit_start: float
    fit_time_s: float
    trials: pd.DataFrame  # trials.csv plus running_at, ended_at, first_time_total_s, first_epoch_time_s
    events: pd.DataFrame  # one row per reported epoch: trial_id, trial_number, epoch, metrics, Ray timings, at
    gpu_samples: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def trial_epochs(self) -> int:
        return len(self.events)

    @property
    def compute_s(self) -> float:
        return float(self.events["epoch_time_s"].sum())

    @property
    def best(self) -> float:
        return float(self.events[METRIC].max())


class GpuSampler:
    """nvidia-smi every 500 ms in the background while a search runs."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._text = ""
        self._reader: threading.Thread | None = None

    def __enter__(self) -> "GpuSampler":
        self._process = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits",
             "-lms", "500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        self._text = self._process.stdout.read()

    def __exit__(self, *exc: Any) -> None:
        assert self._process is not None and self._reader is not None
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)

    def samples(self) -> pd.DataFrame:
        return parse_nvidia_smi(self._text)


def options_for(shared: Shared, spec: Spec) -> Any:
    from search.options import SearchOptions

    return SearchOptions(
        space=shared.space, n_records=spec.records or shared.records, num_samples=spec.trials, max_epochs=spec.epochs,
        grace_period=min(spec.grace_period or shared.grace_period, spec.epochs), reduction_factor=shared.reduction_factor,
        scheduler=spec.scheduler, sampler=spec.sampler, seed=shared.seed, cpus_per_trial=shared.cpus_per_trial,
        gpus_per_trial=spec.gpus_per_trial, max_concurrent=spec.concurrency, top_k=1,
        results_dir=shared.work_dir / spec.name)


def run_search(shared: Shared, spec: Spec) -> Search:
    """`search.run` as launch.py calls it; returns its trials, epochs and timings."""
    import search

    options = options_for(shared, spec)
    print(f"\n=== search {spec.name} ===", flush=True)
    sampler = GpuSampler() if spec.gpus_per_trial else contextlib.nullcontext()
    with sampler:
        run_dir = search.run(options)
    record = RunFolder.open(run_dir).record
    fit_start, fit_time_s = float(record.fit_started), float(record.fit_time_s)
    ray_start_s = float(record.ray_start_s if record.ray_start_s is not None else math.nan)  # search.run's own Ray
    trials, events = read_run(run_dir)
    found = Search(spec=spec, run_dir=run_dir, ray_start_s=ray_start_s, fit_start=fit_start, fit_time_s=fit_time_s,
                   trials=trials, events=events,
                   gpu_samples=sampler.samples() if isinstance(sampler, GpuSampler) else pd.DataFrame())
    print(f"=== {spec.name}: Ray start {ray_start_s:.1f} s, Tuner.fit {fit_time_s:.1f} s, "
          f"{len(trials)} trials, {found.trial_epochs} trial-epochs, best {METRIC} {found.best:.4f}", flush=True)
    return found


def read_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trials.csv joined with Ray's per-trial times, and every reported epoch with its report time."""
    from ray.tune import ExperimentAnalysis

    from search.exports import read_trials

    folder = RunFolder.open(run_dir)
    experiment_path = folder.experiment_dir(folder.record.args.get("storage_path"))
    trials = folder.read_csv(TRIALS)
    ray_trials = {t.trial_id: t for t in ExperimentAnalysis(str(experiment_path)).trials}
    records = read_trials(experiment_path).records
    numbers = dict(zip(trials["trial_id"].astype(str), trials["trial_number"]))
    frames, times = [], []
    for record in records:
        meta = ray_trials[record.trial_id].run_metadata
        running_at = meta.start_time if meta.start_time is not None else math.nan
        epochs = record.epochs
        first = epochs.iloc[0] if len(epochs) else None
        times.append({"trial_id": record.trial_id, "running_at": running_at,
                      "ended_at": meta.last_result_time if meta.last_result_time else math.nan,
                      "first_time_total_s": float(first["time_total_s"]) if first is not None else math.nan,
                      "first_epoch_time_s": float(first["epoch_time_s"]) if first is not None else math.nan})
        if len(epochs):
            frame = epochs[["epoch", METRIC, "epoch_time_s", "time_this_iter_s", "time_total_s"]].copy()
            frame.insert(0, "trial_number", numbers[record.trial_id])
            frame.insert(0, "trial_id", record.trial_id)
            # Ray's time_total_s runs from the trainable's first call, which follows the actor's start at once.
            frame["at"] = running_at + frame["time_total_s"]
            frames.append(frame)
    trials["trial_id"] = trials["trial_id"].astype(str)
    trials = trials.merge(pd.DataFrame(times), on="trial_id", how="left")
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return trials, events


def retrain_winner(found: Search, *, device: str) -> dict[str, Any]:
    """The search's best config (best_configs.csv rank 1) trained for the full epoch budget with
    `ecg.train.fit` on the run's own split (split.csv), without Ray, torch seeded with the config's seed
    before the model is built; its best validation micro-F1."""
    import torch

    from ecg.train import fit
    from ecg.train.config import TrialConfig
    from search import data as run_data
    from search.options import ResolvedOptions

    folder = RunFolder.open(found.run_dir)
    options = ResolvedOptions.from_dict(folder.record.args)  # resolved: fs and length as the search had them
    dataset, source = run_data.load(options)
    split = run_data.split(dataset, seed=options.seed, existing=folder.file(SPLIT), source=source)
    row = folder.read_csv(BEST_CONFIGS).iloc[0]
    config = TrialConfig.from_flat(row.to_dict())
    split = run_data.with_space_rates(split, options).at_rate(config.fs)  # the winner's input rate
    config.optim.epochs = found.spec.epochs
    config.optim.threads = max(1, int(options.cpus_per_trial))
    torch.manual_seed(config.optim.seed)  # seeded initial weights: the retraining is repeatable
    model = config.build_model(n_leads=split.train.n_leads, n_classes=split.train.n_classes,
                               length=split.train.n_samples)
    started = time.perf_counter()
    result = fit(model, split.train, split.val, config.optim, device=device)
    return {"trial_id": row["trial_id"], "retrained_best": float(result.best_metrics[METRIC]), "retrained_best_epoch": result.best_epoch,
            "retrained_last": float(result.history[-1][METRIC]), "retrain_s": time.perf_counter() - started}


# ----------------------------------------------------------------------------------------------------------
# The sections
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Plan:
    """The sizes of one bench run (full or smoke)."""

    trials: int
    epochs: int
    concurrency: int
    overhead_trials: int
    long_trials: int
    short_trial_s: float
    long_trial_s: float
    calibrate: bool  # False (smoke): the overhead searches reuse the main size instead of ~10 s / ~60 s trials
    tpe_grace_period: int  # section 1 also runs ASHA with TPE from this rung


class Bench:
    def __init__(self, shared: Shared, plan: Plan, out: Path, device: str) -> None:
        self.shared, self.plan, self.out, self.device = shared, plan, out, device
        self._runs: dict[Spec, Search] = {}
        self.summary: list[str] = []

    def search(self, spec: Spec) -> Search:
        """Each distinct search runs once per bench run (smoke mode shares searches between sections)."""
        if spec not in self._runs:
            self._runs[spec] = run_search(self.shared, spec)
        return self._runs[spec]

    def spec(self, scheduler: str, sampler: str, **changes: Any) -> Spec:
        """A search of the main size with `changes`; with GPUs, trials share them `concurrency` ways."""
        values = {"trials": self.plan.trials, "epochs": self.plan.epochs, "concurrency": self.plan.concurrency,
                  **changes}
        gpus_per_trial = min(1.0, self.shared.gpus / values["concurrency"]) if self.shared.gpus else 0.0
        return Spec(scheduler=scheduler, sampler=sampler, gpus_per_trial=gpus_per_trial, **values)

    def write(self, frame: pd.DataFrame, name: str, title: str) -> None:
        frame.to_csv(self.out / name, index=False)
        text = frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        print(f"\n{title}  ({self.out / name})\n{text}", flush=True)
        self.summary.append(f"### {title}\n\n`{name}`\n\n```\n{text}\n```\n")

    def note(self, text: str) -> None:
        print(text, flush=True)
        self.summary.append(text + "\n")

    # 1 -------------------------------------------------------------------------------------------------
    def asha_vs_fifo(self) -> None:
        """ASHA against FIFO with the random sampler, whose seeded draws do not depend on results, so both
        searches try the same configs in the same order and only early stopping differs (the targets are
        judged here); and with TPE (what launch.py runs), where ASHA changes what the sampler learns from, so
        the searches soon try different configs: from the bench's first rung and from `tpe_grace_period`."""
        rows, curves, found_by = [], [], {}
        searches = [("asha", "random", None), ("fifo", "random", None), ("asha", "tpe", None), ("fifo", "tpe", None)]
        if self.plan.tpe_grace_period != self.shared.grace_period:
            searches.insert(3, ("asha", "tpe", self.plan.tpe_grace_period))
        for scheduler, sampler, grace in searches:
            found = found_by[scheduler, sampler, grace] = self.search(self.spec(scheduler, sampler, grace_period=grace))
            first_rung = (grace or self.shared.grace_period) if scheduler == "asha" else None
            retrained = retrain_winner(found, device=self.device)
            rows.append({"sampler": sampler, "scheduler": scheduler, "first_rung": first_rung,
                         "trials": len(found.trials),
                         "trial_epochs": found.trial_epochs, "wall_s": found.fit_time_s,
                         "ray_start_s": found.ray_start_s, f"best_{METRIC}": found.best,
                         "winner": retrained["trial_id"], f"retrained_{METRIC}": retrained["retrained_best"],
                         "retrained_best_epoch": retrained["retrained_best_epoch"],
                         f"retrained_last_{METRIC}": retrained["retrained_last"],
                         "retrain_s": retrained["retrain_s"]})
            curve = best_so_far_by_trial_epochs(found.events)
            curve.insert(0, "search", f"{scheduler}, {sampler}" + (f", first rung {grace}" if grace else ""))
            curves.append(curve)
        table = pd.DataFrame(rows)
        self.write(table, "asha_vs_fifo.csv", "1. ASHA vs FIFO (same space, seed, trials; random sampler: the same "
                                              "configs in both; TPE: what launch.py runs)")
        curve = pd.concat(curves, ignore_index=True)
        curve.to_csv(self.out / "asha_fifo_curve.csv", index=False)
        plot_curves(curve, "search", "trial_epochs", "trial-epochs spent", self.out / "asha_fifo_curve.png",
                    f"best {METRIC} found: ASHA vs FIFO")
        asha_searches = [(sampler, grace or self.shared.grace_period)
                         for scheduler, sampler, grace in searches if scheduler == "asha"]
        for sampler, rung in asha_searches:
            a = table[(table["sampler"] == sampler) & (table["first_rung"] == rung)].iloc[0]
            f = table[(table["sampler"] == sampler) & (table["scheduler"] == "fifo")].iloc[0]
            label = f"{sampler}, first rung {rung}"
            ratio = a["trial_epochs"] / f["trial_epochs"]
            gap = f[f"retrained_{METRIC}"] - a[f"retrained_{METRIC}"]
            mark = verdict if sampler == "random" else (lambda ok: "(reported, not judged)")
            fifo_curve = curve[curve["search"] == f"fifo, {sampler}"]
            self.note(f"{label}: ASHA trial-epochs / FIFO: {ratio:.3f} (target <= {TARGETS['asha_epoch_ratio']}) "
                      f"{mark(ratio <= TARGETS['asha_epoch_ratio'])}; wall time ratio {a['wall_s'] / f['wall_s']:.3f}")
            self.note(f"{label}: retrained winners: FIFO {f[f'retrained_{METRIC}']:.4f}, ASHA "
                      f"{a[f'retrained_{METRIC}']:.4f}, gap {gap:+.4f} (target <= {TARGETS['retrained_f1_gap']}) "
                      f"{mark(gap <= TARGETS['retrained_f1_gap'])}")
            self.note(f"{label}: FIFO's best after ASHA's {int(a['trial_epochs'])} trial-epochs: "
                      f"{best_at(fifo_curve, 'trial_epochs', a['trial_epochs']):.4f} (ASHA's best: "
                      f"{a[f'best_{METRIC}']:.4f})")
        self._rung_correlation([found_by["fifo", "random", None], found_by["fifo", "tpe", None]])

    def _rung_correlation(self, fifos: list[Search]) -> None:
        """Over both FIFO searches' trials: Spearman rho of each epoch's F1, and of the best F1 so far (what
        the search's rungs compare), with the trial's final best; then ASHA replayed on those trials."""
        events = pd.concat([f.events for f in fifos], ignore_index=True).sort_values(["trial_id", "epoch"])
        last = self.plan.epochs
        # best_so_far at the last epoch is the trial's final best; epoch_f1 pairs each epoch's own F1 with it.
        events["best_so_far"] = events.groupby("trial_id")[METRIC].cummax()
        events["epoch_f1"] = events[METRIC].where(events["epoch"] < last, events["best_so_far"])
        rows = []
        for epoch in range(1, last + 1):
            rho_best, n = rank_correlation(events, epoch, last, value="best_so_far")
            rows.append({"epoch": epoch, "rho_best_so_far": rho_best,
                         "rho_epoch_f1": rank_correlation(events, epoch, last, value="epoch_f1")[0], "trials": n,
                         "is_first_rung": epoch == self.shared.grace_period})
        self.write(pd.DataFrame(rows), "rung_rank_correlation.csv",
                   f"1b. FIFO trials (random and TPE searches): Spearman rho with each trial's final best {METRIC}")
        first = rows[self.shared.grace_period - 1]
        self.note(f"Spearman rho at the first ASHA rung (epoch {self.shared.grace_period}) with the final best, over "
                  f"{first['trials']} FIFO trials: {first['rho_best_so_far']:.3f} by the best so far (what the rungs "
                  f"compare), {first['rho_epoch_f1']:.3f} by the epoch's own F1")
        curves = [c for f in fifos for c in trial_curves(f.events)]
        replays = []
        for grace, rf in sorted({(self.shared.grace_period, self.shared.reduction_factor), (2, 4), (3, 4)}):
            for by_best in (False, True):
                replays.append({"grace_period": grace, "reduction_factor": rf,
                                "rungs_compare": "best so far" if by_best else "epoch F1",
                                **resampled_replays(curves, draws=REPLAY_DRAWS, size=self.plan.trials,
                                                    seed=self.shared.seed, grace_period=grace, reduction_factor=rf,
                                                    max_t=last, concurrency=self.plan.concurrency,
                                                    by_best_so_far=by_best)})
        self.write(pd.DataFrame(replays), "asha_replay.csv",
                   f"1c. ASHA replayed on the FIFO trials: {REPLAY_DRAWS} draws of {self.plan.trials} trials in random "
                   f"order; trial-epochs / FIFO's and how often ASHA keeps a winner within "
                   f"{TARGETS['retrained_f1_gap']} of the draw's best")

    # 2 -------------------------------------------------------------------------------------------------
    def tpe_vs_random(self) -> None:
        curves = []
        for sampler in ("tpe", "random"):
            found = self.search(self.spec("fifo", sampler))
            curve = best_so_far_by_trials(found.trials)
            curve.insert(0, "sampler", sampler)
            curves.append(curve)
        curve = pd.concat(curves, ignore_index=True)
        wide = curve.pivot(index="trials", columns="sampler", values="best").reset_index()
        self.write(wide, "tpe_vs_random.csv", f"2. TPE vs random (FIFO): best {METRIC} after n trials")
        plot_curves(curve, "sampler", "trials", "trials", self.out / "tpe_random_curve.png",
                    f"best {METRIC} found: TPE vs random")

    # 3, 4, 5 -------------------------------------------------------------------------------------------
    def overhead_start_concurrency(self) -> None:
        plan = self.plan
        short = self._overhead_spec(plan.short_trial_s, plan.overhead_trials)
        # Concurrency levels of section 5: 1 and 2 CPU trials, or 1, 2 and 4 trials per GPU.
        levels = [1, 2, 4] if self.shared.gpus else sorted({1, plan.concurrency})
        by_level = {c: self.search(self.spec("fifo", "random", trials=short.trials, epochs=short.epochs,
                                             concurrency=c * max(1, self.shared.gpus)))
                    for c in levels}
        searches = {f"short trials, {found.spec.concurrency} at a time": found for found in by_level.values()}
        if plan.calibrate:
            long = self._long_spec(short)
            searches["long trials, 1 at a time"] = self.search(long)
        for spec, found in self._runs.items():
            if all(found is not other for other in searches.values()):
                searches[f"{spec.name} (another search of this run)"] = found
        starts = {label: trial_start_times(found.trials, found.fit_start, found.spec.concurrency)
                  for label, found in searches.items()}
        self._overhead(searches, starts)
        self._trial_start(starts)
        self._concurrency(by_level)

    def _overhead(self, searches: dict[str, Search], starts: dict[str, pd.DataFrame]) -> None:
        rows = []
        for label, found in searches.items():
            conc = found.spec.concurrency
            reports = found.events[found.events["epoch"] > 1]
            report_s = reports["time_this_iter_s"] - reports["epoch_time_s"]
            ideal = found.compute_s / conc
            # Where the time beyond the ideal went, per slot: trial starts, per-epoch reports (result and
            # best-checkpoint), and the rest (slots idle at the end, Tune's own bookkeeping).
            start_s = float(starts[label]["start_s"].sum()) / conc
            rows.append({"search": label, "concurrency": conc, "trials": len(found.trials),
                         "epochs": found.spec.epochs, "mean_trial_compute_s": found.compute_s / len(found.trials),
                         "ideal_s": ideal, "fit_wall_s": found.fit_time_s,
                         "overhead_pct": 100 * overhead(found.fit_time_s, found.compute_s, conc),
                         "starts_s": start_s, "reports_s": float(report_s.sum()) / conc,
                         "rest_s": found.fit_time_s - ideal - start_s - float(report_s.sum()) / conc,
                         "mean_report_s": float(report_s.mean()) if len(reports) else math.nan,
                         "ray_start_s": found.ray_start_s})
        table = pd.DataFrame(rows)
        self.write(table, "overhead.csv", "3. Ray overhead: Tuner.fit wall vs sum(epoch compute) / concurrency; "
                                          "the excess split per slot into trial starts, per-epoch reports "
                                          "(result + best checkpoint) and the rest")
        targets = {"short trials": TARGETS["overhead_short"], "long trials": TARGETS["overhead_long"]}
        for _, row in table.iterrows():
            for prefix, target in targets.items():
                if row["search"].startswith(prefix):
                    excess = row["fit_wall_s"] - row["ideal_s"]
                    self.note(f"overhead, {row['search']} (mean trial compute {row['mean_trial_compute_s']:.1f} s): "
                              f"{row['overhead_pct']:.1f}% (target <= {100 * target:.0f}%) "
                              f"{verdict(row['overhead_pct'] <= 100 * target)}; of the {excess:.1f} s excess, "
                              f"trial starts {100 * row['starts_s'] / excess:.0f}%, per-epoch reports "
                              f"{100 * row['reports_s'] / excess:.0f}%, the rest {100 * row['rest_s'] / excess:.0f}%")

    def _trial_start(self, starts: dict[str, pd.DataFrame]) -> None:
        start = pd.concat([frame.assign(search=label) for label, frame in starts.items()], ignore_index=True)
        start = start[["search", *[c for c in start.columns if c != "search"]]]
        start.to_csv(self.out / "trial_start_per_trial.csv", index=False)
        summary = start.groupby("search", sort=False).agg(
            trials=("start_s", "size"), median_start_s=("start_s", "median"), max_start_s=("start_s", "max"),
            median_actor_s=("actor_s", "median"), median_setup_s=("setup_s", "median")).reset_index()
        self.write(summary, "trial_start.csv", "4. Trial start: slot free -> first training step "
                                               "(actor_s: Ray, until the actor runs; setup_s: trainable, until step 1)")
        worst = float(summary["median_start_s"].max())
        self.note(f"trial start, worst median over the searches: {worst:.2f} s (target <= {TARGETS['trial_start_s']:g} s) "
                  f"{verdict(worst <= TARGETS['trial_start_s'])}")

    def _concurrency(self, by_level: dict[int, Search]) -> None:
        rows = []
        for level, found in by_level.items():
            row: dict[str, Any] = {"device": "cuda" if found.spec.gpus_per_trial else "cpu",
                                   "concurrent_trials": found.spec.concurrency}
            if found.spec.gpus_per_trial:
                row["trials_per_gpu"] = level
            row.update(trials=len(found.trials), wall_s=found.fit_time_s,
                       trials_per_hour=trials_per_hour(len(found.trials), found.fit_time_s))
            if found.spec.gpus_per_trial:
                util = found.gpu_samples
                row.update(gpu_util_mean_pct=util["util_pct"].mean() if len(util) else math.nan,
                           gpu_mem_max_mib=util["memory_mib"].max() if len(util) else math.nan)
            rows.append(row)
        table = pd.DataFrame(rows)
        table["speedup"] = table["trials_per_hour"] / float(table["trials_per_hour"].iloc[0])
        self.write(table, "concurrency.csv", "5. Concurrency: trials per hour (the same short trials)")
        if not self.shared.gpus:
            self.note("5. GPU rows (1, 2, 4 trials per GPU, nvidia-smi sampled): not run, no GPU on this machine")

    def _overhead_spec(self, target_s: float, trials: int) -> Spec:
        """A FIFO + random search of `trials` trials of about `target_s` each: epochs calibrated from section 2's
        random search (same space, seed and data, hence the same first configs). Smoke: section 2's size."""
        if not self.plan.calibrate:
            return self.spec("fifo", "random")
        reference = self.search(self.spec("fifo", "random"))
        return self.spec("fifo", "random", trials=trials,
                         epochs=epochs_for(target_s, mean_epoch_s(reference.events, first_trials=trials)))

    def _long_spec(self, short: Spec) -> Spec:
        """~`long_trial_s` trials one at a time: as many epochs as the short trials, each on proportionally
        more records. A longer trial of a real search has longer epochs, not more of them; stretching the
        epoch count instead (272 epochs of 0.23 s in an earlier version) measured Ray's per-report cost
        rather than a 60 s trial's overhead. Epoch time grows faster than the record count (23x the records
        took 35x as long per epoch here), so a one-epoch pilot search at the first guess sets the final size."""
        reference = self.search(self.spec("fifo", "random"))
        guess = self._records_for(self.shared.records, mean_epoch_s(reference.events, first_trials=self.plan.long_trials),
                                  short.epochs)
        pilot = self.search(self.spec("fifo", "random", trials=self.plan.long_trials, epochs=1, concurrency=1,
                                      records=guess))
        records = self._records_for(guess, mean_epoch_s(pilot.events, first_trials=self.plan.long_trials), short.epochs)
        return self.spec("fifo", "random", trials=self.plan.long_trials, epochs=short.epochs, concurrency=1,
                         records=records)

    def _records_for(self, records: int, epoch_s: float, epochs: int) -> int:
        """Records that make `epochs` epochs last about `long_trial_s`, when `records` take `epoch_s` an epoch."""
        return int(round(records * self.plan.long_trial_s / (epochs * epoch_s)))

    def runs_table(self) -> pd.DataFrame:
        rows = [{"search": spec.name, "run_dir": str(found.run_dir), "ray_start_s": found.ray_start_s,
                 "fit_wall_s": found.fit_time_s, "trials": len(found.trials), "trial_epochs": found.trial_epochs}
                for spec, found in self._runs.items()]
        return pd.DataFrame(rows)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def plot_curves(curve: pd.DataFrame, group: str, x: str, xlabel: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, part in curve.groupby(group, sort=False):
        ax.step(part[x], part["best"], where="post", label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"best {METRIC}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> dict[str, Any]:
    import ray
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu, "cores": os.cpu_count(), "gpus": gpus or "none", "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
            "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()]}


def write_readme(out: Path, bench: Bench, started: dict[str, Any], ended: dict[str, Any], args: argparse.Namespace,
                 wall_s: float) -> None:
    command = "python bench/bench_search.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        "# Search benchmark (issue 7): latest figures",
        "",
        f"Made by `{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M %Z')}, {'smoke' if args.smoke else 'full'} "
        f"mode, {wall_s / 60:.1f} min in all.",
        "",
        f"Machine: {started['cpu']}, {started['cores']} cores, GPUs: {started['gpus']}; {started['platform']}; "
        f"Python {started['python']}, torch {started['torch']}, Ray {started['ray']}.",
        f"Load average (1/5/15 min) at start {started['load_average_1_5_15']}, at end {ended['load_average_1_5_15']}"
        + (f". Note: {args.note}" if args.note else "") + ".",
        "",
        "Same figures again (every setting spelled out): `python bench/bench_search.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in (
            ("space", bench.shared.space), ("records", bench.shared.records), ("trials", bench.plan.trials),
            ("epochs", bench.plan.epochs), ("grace_period", bench.shared.grace_period),
            ("reduction_factor", bench.shared.reduction_factor), ("concurrency", bench.plan.concurrency),
            ("overhead_trials", bench.plan.overhead_trials), ("long_trials", bench.plan.long_trials),
            ("seed", bench.shared.seed))) + (" --smoke" if args.smoke else "") + "`.",
        "",
        f"Settings: space `{bench.shared.space}`, {bench.shared.records} synthetic records, seed {bench.shared.seed}, "
        f"{bench.plan.trials} trials x {bench.plan.epochs} epochs, ASHA grace period {bench.shared.grace_period}, "
        f"reduction factor {bench.shared.reduction_factor}, {bench.plan.concurrency} concurrent trials of "
        f"{bench.shared.cpus_per_trial:g} CPU.",
        "",
        "How each figure is made: see the docstring of bench/bench_search.py. Plots: `asha_fifo_curve.png`, "
        "`tpe_random_curve.png`.",
        "",
        *bench.summary,
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="toy sizes for CI: checks every section runs; figures are noise")
    p.add_argument("--space", default="gru",
                   help="search space (the default is the cheapest family on CPU: an ECGNet epoch costs 10-50x more)")
    p.add_argument("--records", type=int, default=600, help="synthetic records (split 7:1:2)")
    p.add_argument("--trials", type=int, default=24, help="trials per search (ASHA, FIFO, TPE, random alike)")
    # ASHA's rungs at 1, 4 and 16 of 18 epochs, compared on each trial's best F1 so far. Chosen by section 1c
    # (ASHA replayed on 300 resampled 24-trial searches from the FIFO trials of a full run): spending a median
    # 26% of FIFO's trial-epochs (90th percentile 37%) and keeping a winner within 0.01 of the best in 95% of
    # draws. Rungs from epoch 3 (ratio ~0.42) cannot reach 35% with 24 trials; a rung at epoch 2 judged on the
    # epoch's own F1 lost the winner in 73% of draws (many trials predict no label at all at epoch 2).
    p.add_argument("--epochs", type=int, default=18, help="the full epoch budget (ASHA's max_t)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA's first rung (epochs)")
    p.add_argument("--reduction-factor", type=int, default=4)
    # With TPE a first rung at epoch 1 can derail the search: the best of the first random configs (one-cycle,
    # still warming up) is stopped there and TPE then samples around the early survivors (best 0.61 in two full
    # runs, 0.87 in a third, against FIFO's 0.86-0.91); from a rung at epoch 3 (rho ~0.8) it found 0.91 in all three.
    p.add_argument("--tpe-grace-period", type=int, default=3,
                   help="section 1 also runs ASHA with TPE from this first rung (same reduction factor)")
    p.add_argument("--concurrency", type=int, default=2, help="concurrent trials of sections 1-2 and the 2nd row of 5")
    p.add_argument("--overhead-trials", type=int, default=24,
                   help="trials of the ~10 s searches (sections 3-5); 24 like every full-mode search")
    p.add_argument("--long-trials", type=int, default=3, help="trials of the ~60 s search (section 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cuda: trials get GPU shares and section 5 also runs 1, 2, 4 trials per GPU")
    p.add_argument("--out", type=Path, default=None,
                   help="where the CSV, PNG and README.md go (default: bench/results/search, or "
                        "bench/out/search-smoke with --smoke)")
    p.add_argument("--keep-runs", action="store_true",
                   help="keep the searches' run folders (under bench/out/search-runs/, which git ignores)")
    p.add_argument("--note", default="", help="a remark for the README (e.g. 'machine shared with other jobs')")
    args = p.parse_args(argv)
    if args.smoke:
        args.records, args.trials, args.epochs, args.overhead_trials = min(args.records, 120), 3, 2, 3
        args.grace_period = args.tpe_grace_period = 1  # no extra TPE search: the same code as the first rung's
    root = Path(__file__).resolve().parent
    if args.out is None:
        args.out = root / ("out/search-smoke" if args.smoke else "results/search")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    gpus = torch.cuda.device_count() if args.device in ("auto", "cuda") else 0
    if args.device == "cuda" and not gpus:
        raise SystemExit("--device cuda: torch sees no GPU on this machine")
    device = "cuda" if gpus else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    if args.keep_runs:
        work_dir = Path(__file__).resolve().parent / "out" / "search-runs" / time.strftime("%Y%m%d-%H%M%S")
    else:
        work_dir = Path(tempfile.mkdtemp(prefix="bench-search-"))
    shared = Shared(space=args.space, records=args.records, seed=args.seed, grace_period=args.grace_period,
                    reduction_factor=args.reduction_factor, cpus_per_trial=1.0, gpus=gpus, work_dir=work_dir)
    plan = Plan(trials=args.trials, epochs=args.epochs, concurrency=args.concurrency,
                overhead_trials=args.overhead_trials, long_trials=args.long_trials, short_trial_s=10.0,
                long_trial_s=60.0, calibrate=not args.smoke, tpe_grace_period=args.tpe_grace_period)
    started_at, started = time.perf_counter(), machine()
    bench = Bench(shared, plan, args.out, device)
    if args.smoke:  # one Ray for every search (search.run leaves a Ray it did not start running): CI's time
        import ray

        ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    try:
        bench.asha_vs_fifo()
        bench.tpe_vs_random()
        bench.overhead_start_concurrency()
        bench.runs_table().to_csv(args.out / "searches.csv", index=False)
        write_readme(args.out, bench, started, machine(), args, time.perf_counter() - started_at)
    finally:
        if args.smoke:
            ray.shutdown()
        if not args.keep_runs:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(f"\nfigures, plots and README.md in {args.out} ({(time.perf_counter() - started_at) / 60:.1f} min)")


if __name__ == "__main__":
    main()
