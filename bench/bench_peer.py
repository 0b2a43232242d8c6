"""This system against what a user would pick instead, on the same GRU space, data and wall-clock budget (issue 15).

    python bench/bench_peer.py                   # 7 min per method, the three at once; ~10 min in all
    python bench/bench_peer.py --budget-min 4    # shorter
    python bench/bench_peer.py --smoke           # toy sizes for CI (1.5 min each, side by side); figures are noise

The three methods, each with two trials (processes) at a time, 1 CPU thread per trial:
  (a) ray_asha_tpe   this system: `launch.py --space gru` (Ray Tune + Optuna TPE + ASHA at the CPU defaults'
                     rungs), stopped with Ctrl-C (SIGINT) at the budget, as a user would stop it;
  (b) optuna_hb_tpe  plain Optuna as its docs teach: one RDB study (SQLite), two processes each calling
                     `study.optimize(objective, ...)`, TPESampler + HyperbandPruner, the objective reporting
                     every epoch (`trial.report`) and raising `optuna.TrialPruned` when `trial.should_prune()`;
  (c) random_full    random search without pruning (Optuna's RandomSampler, every trial trained to the end).
Same space (`spaces.build_space("gru", ...)`: (b) and (c) call the very function the search's OptunaSearch
calls), same records and split (the bench writes split.csv once; launch.py makes the same split from the
same seed, and the bench checks that it did), same epoch budget per trial, same `ecg.train.fit`.

The three run AT THE SAME TIME, each over the same wall-clock window: this machine is shared with other jobs
whose load changes by the minute, and running the methods one after another would give each different
conditions; side by side they share whatever the machine gives during that window. The load average is
sampled every 10 s and written with the figures.

Figures (printed, and under --out as CSV, a PNG and README.md):
  * best validation micro-F1 (each trial's best epoch, as every method selects) reached by each method at
    equal wall time: at the budget and at each quarter of it; time counted from the moment the method was
    launched, so Ray's start-up and each process's imports count against it;
  * the time each method needs to reach (c)'s final best;
  * each method's winner (its best trial within the budget) retrained once with `ecg.train.fit` for the same
    epochs on the same split, scored on the test split (micro-F1 at 0.5, the epoch chosen on validation);
    the three retrainings also run side by side.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

METRIC = "val_micro_f1"
METHODS = ("ray_asha_tpe", "optuna_hb_tpe", "random_full")
STUDY = "peer"


# ----------------------------------------------------------------------------------------------------------
# Pure functions: curves and the figures read off them
# ----------------------------------------------------------------------------------------------------------

def best_curve(events: pd.DataFrame) -> pd.DataFrame:
    """Best value so far against time: `events` has one row per reported epoch with `t` (seconds since the
    method was launched) and METRIC. Columns t, best; NaN values never count."""
    ordered = events.dropna(subset=[METRIC]).sort_values("t", kind="stable")
    return pd.DataFrame({"t": ordered["t"].to_numpy(), "best": ordered[METRIC].cummax().to_numpy()})


def best_by(curve: pd.DataFrame, t: float) -> float:
    """The curve's best once `t` seconds had passed (NaN before its first point)."""
    reached = curve[curve["t"] <= t]
    return float(reached["best"].iloc[-1]) if len(reached) else math.nan


def time_to_reach(curve: pd.DataFrame, value: float) -> float:
    """When the curve first reached `value` (NaN if it never did, or `value` is NaN)."""
    if math.isnan(value):
        return math.nan
    reached = curve[curve["best"] >= value - 1e-12]
    return float(reached["t"].iloc[0]) if len(reached) else math.nan


# ----------------------------------------------------------------------------------------------------------
# The shared data and the Optuna workers (methods b and c)
# ----------------------------------------------------------------------------------------------------------

def search_options(args: argparse.Namespace) -> Any:
    """The search every method runs: the GRU space at the CPU defaults' sizes for --records records."""
    from search.options import SearchOptions

    return SearchOptions(space="gru", n_records=args.records, max_epochs=args.epochs, grace_period=args.grace_period,
                         reduction_factor=args.reduction_factor, seed=args.seed, cpus_per_trial=1.0).resolved(0)


def load_split(args: argparse.Namespace, split_csv: Path) -> Any:
    """The records and the split every method uses (written to `split_csv` by the first caller), at every input
    rate the space samples, as the search resamples them."""
    from search import data as run_data

    options = search_options(args)
    dataset, source = run_data.load(options)
    split = run_data.split(dataset, seed=options.seed, split_csv=split_csv, source=source)
    return run_data.with_space_rates(split, options)


class Deadline(Exception):
    """The budget is spent: the worker stops mid-trial (what it reported so far is logged)."""


def optuna_worker(args: argparse.Namespace) -> None:
    """One of the two processes of method (b) or (c): `study.optimize` on the shared RDB study until the
    deadline, logging every epoch (time, trial, value) and every trial's config as it goes."""
    import optuna
    import torch

    from ecg.models import create_model
    from ecg.train import TrialConfig, fit
    from spaces import SpaceContext, build_space

    work = Path(args.work)
    split = load_split(args, work / "split.csv")
    space = build_space("gru", SpaceContext(gpu=False, length=split.train.n_samples, max_epochs=args.epochs,
                                            seed=args.seed, metric=METRIC, fs=split.fs))
    log = open(work / f"{args.worker}-{args.worker_index}.events.csv", "a", buffering=1)
    configs = open(work / f"{args.worker}-{args.worker_index}.configs.jsonl", "a", buffering=1)

    def objective(trial: optuna.Trial) -> float:
        flat = space(trial)  # what OptunaSearch calls in method (a)
        configs.write(json.dumps({"trial": trial.number, "config": flat, "started": time.time()}, default=str) + "\n")
        config = TrialConfig.from_flat(flat)
        config.optim.threads = 1
        torch.manual_seed(config.optim.seed)
        data = split.at_rate(config.fs)  # the trial's input rate, as a search trial takes it
        model = create_model(config.family, n_leads=data.train.n_leads, n_classes=data.train.n_classes,
                             length=data.train.n_samples, **config.model)
        best = [-math.inf]

        def on_epoch(report: Any) -> None:
            value = float(report.metrics[METRIC])
            best[0] = max(best[0], value) if not math.isnan(value) else best[0]
            log.write(f"{time.time():.3f},{trial.number},{report.epoch},{value:.6f},"
                      f"{report.metrics['epoch_time_s']:.3f}\n")
            if time.time() > args.deadline:
                raise Deadline()
            # The trial's best so far, as this system's rungs compare (docs/search.md); Optuna's own docs
            # report the epoch's value, which on these small validation splits is noisier.
            trial.report(best[0], report.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        fit(model, data.train, data.val, config.optim, on_epoch=on_epoch, device="cpu")
        return best[0]

    sampler = (optuna.samplers.TPESampler(seed=args.seed + args.worker_index) if args.worker == "optuna_hb_tpe"
               else optuna.samplers.RandomSampler(seed=args.seed + args.worker_index))
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs,
                                             reduction_factor=args.reduction_factor)
              if args.worker == "optuna_hb_tpe" else optuna.pruners.NopPruner())
    study = optuna.load_study(study_name=STUDY, storage=args.storage, sampler=sampler, pruner=pruner)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study.optimize(objective, timeout=max(1.0, args.deadline - time.time()), catch=())
    except Deadline:
        pass


def retrain_worker(args: argparse.Namespace) -> None:
    """Retrain one winner's config for --epochs epochs on the shared split; write its val and test micro-F1."""
    import torch

    from ecg.metrics import binarize, micro_f1
    from ecg.models import create_model
    from ecg.train import TrialConfig, fit, predict

    work = Path(args.work)
    split = load_split(args, work / "split.csv")
    flat = json.loads(Path(args.config).read_text())
    config = TrialConfig.from_flat(flat)
    config.optim.epochs, config.optim.threads = args.epochs, 1
    torch.manual_seed(config.optim.seed)
    split = split.at_rate(config.fs)
    model = create_model(config.family, n_leads=split.train.n_leads, n_classes=split.train.n_classes,
                         length=split.train.n_samples, **config.model)
    started = time.perf_counter()
    result = fit(model, split.train, split.val, config.optim, device="cpu")  # the model keeps the best epoch
    probs = predict(model, split.test, device="cpu")
    out = {"val_micro_f1": float(result.best_metrics[METRIC]), "best_epoch": result.best_epoch,
           "test_micro_f1": micro_f1(split.test.labels.astype(bool), binarize(probs, 0.5)),
           "retrain_s": round(time.perf_counter() - started, 1)}
    Path(args.result).write_text(json.dumps(out) + "\n")


# ----------------------------------------------------------------------------------------------------------
# The parent: launch the three methods together, stop them at the deadline, read what they did
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Launched:
    method: str
    processes: list[subprocess.Popen]
    started: float


def _self_command(args: argparse.Namespace, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--records", str(args.records), "--epochs",
            str(args.epochs), "--grace-period", str(args.grace_period), "--reduction-factor",
            str(args.reduction_factor), "--seed", str(args.seed), "--work", str(args.work), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def launch_all(args: argparse.Namespace, deadline: float) -> list[Launched]:
    """Start the three methods at (almost) the same moment; each one's clock starts at its own launch."""
    import optuna

    work = Path(args.work)
    launched = []
    ray_cmd = [sys.executable, str(ROOT / "launch.py"), "--space", "gru", "--n-records", str(args.records),
               "--max-epochs", str(args.epochs), "--grace-period", str(args.grace_period),
               "--reduction-factor", str(args.reduction_factor), "--num-samples", "100000",
               "--max-concurrent", "2", "--cpus-per-trial", "1", "--seed", str(args.seed), "--top-k", "1",
               "--results-dir", str(work / "ray")]
    print("(a) " + shlex.join(ray_cmd), flush=True)
    ray_log = open(work / "ray_asha_tpe.log", "w")
    started = time.time()
    # Its own session, so SIGINT reaches the driver only (Ray's processes follow the driver's shutdown).
    launched.append(Launched("ray_asha_tpe", [subprocess.Popen(ray_cmd, cwd=ROOT, env=_env(), stdout=ray_log,
                                                               stderr=subprocess.STDOUT, start_new_session=True)],
                             started))
    for method in METHODS[1:]:
        storage = f"sqlite:///{work / (method + '.db')}"
        optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
        started = time.time()
        procs = [subprocess.Popen(_self_command(args, "--worker", method, "--worker-index", str(i), "--storage",
                                                storage, "--deadline", f"{deadline:.3f}"),
                                  cwd=ROOT, env=_env(), stdout=open(work / f"{method}-{i}.log", "w"),
                                  stderr=subprocess.STDOUT, start_new_session=True) for i in range(2)]
        launched.append(Launched(method, procs, started))
    return launched


class LoadSampler:
    """os.getloadavg() every `every_s` seconds in the background."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s, self.samples = every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), *os.getloadavg()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def mean_1min(self) -> float:
        return float(np.mean([s[1] for s in self.samples])) if self.samples else math.nan


def stop_at_deadline(launched: list[Launched], deadline: float) -> None:
    """At the deadline: Ctrl-C (SIGINT) to launch.py, which stops its trials and exports what finished;
    the Optuna workers stop themselves at their next epoch (or are terminated if they overrun)."""
    time.sleep(max(0.0, deadline - time.time()))
    for item in launched:
        for proc in item.processes:
            if proc.poll() is None and item.method == "ray_asha_tpe":
                proc.send_signal(signal.SIGINT)
    grace = time.time() + 180  # an epoch in flight under load, and launch.py's exports
    for item in launched:
        for proc in item.processes:
            try:
                proc.wait(timeout=max(1.0, grace - time.time()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(timeout=30)


EVENT_COLUMNS = ["t", "trial", "epoch", METRIC, "epoch_time_s", "trial_started_t"]


def ray_events(work: Path, started: float) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], Path | None]:
    """Method (a)'s reported epochs and each trial's flat config. An epoch's time is when Ray's trial was
    RUNNING plus the trial's `time_total_s` at that report (bench_search.read_run)."""
    from bench_search import read_run
    from search.exports import read_trials

    runs = sorted((work / "ray").glob("gru-*"))
    if not runs:
        return pd.DataFrame(columns=EVENT_COLUMNS), {}, None
    experiment = runs[-1].resolve() / "tune"
    configs = {record.trial_id: record.config for record in read_trials(experiment).records} \
        if experiment.exists() else {}
    if not (runs[-1] / "trials.csv").exists():  # stopped before its search began (a slow Ray start): no trial
        return pd.DataFrame(columns=EVENT_COLUMNS), configs, runs[-1]
    trials, events = read_run(runs[-1], experiment)
    if not len(events):
        return pd.DataFrame(columns=EVENT_COLUMNS), configs, runs[-1]
    running = dict(zip(trials["trial_id"], trials["running_at"]))
    frame = pd.DataFrame({"t": events["at"] - started, "trial": events["trial_id"].astype(str),
                          "epoch": events["epoch"], METRIC: events[METRIC], "epoch_time_s": events["epoch_time_s"],
                          "trial_started_t": events["trial_id"].map(running) - started,
                          "time_this_iter_s": events["time_this_iter_s"]})
    return frame, configs, runs[-1]


def optuna_events(work: Path, method: str, started: float) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Method (b) or (c)'s reported epochs and trial configs, from its two workers' logs."""
    frames, configs, trial_started = [], {}, {}
    for events in sorted(work.glob(f"{method}-*.events.csv")):
        frames.append(pd.read_csv(events, names=["time", "trial", "epoch", METRIC, "epoch_time_s"]))
    for lines in sorted(work.glob(f"{method}-*.configs.jsonl")):
        for line in lines.read_text().splitlines():
            entry = json.loads(line)
            configs[str(entry["trial"])] = entry["config"]
            trial_started[str(entry["trial"])] = float(entry["started"]) - started
    if not frames:
        return pd.DataFrame(columns=EVENT_COLUMNS), configs
    frame = pd.concat(frames, ignore_index=True)
    frame["t"] = frame["time"] - started
    frame["trial"] = frame["trial"].astype(str)
    frame["trial_started_t"] = frame["trial"].map(trial_started)
    return frame[EVENT_COLUMNS], configs


def profile(method: str, events: pd.DataFrame, budget_s: float, run_dir: Path | None) -> dict[str, Any]:
    """Where each method's time went within the budget: start-up until its first epoch, the two slots'
    share spent inside epochs (`fit`'s own epoch_time_s: training + validation), and the time a trial spends
    outside its epochs (model build, for (a) also Ray's actor start, the cost figures of the first report
    and checkpoints), per trial."""
    within = events[events["t"] <= budget_s]
    out: dict[str, Any] = {"method": method, "first_epoch_s": float(within["t"].min()) if len(within) else math.nan,
                           "trial_epochs": len(within), "median_epoch_s": float(within["epoch_time_s"].median()),
                           "epoch_s_total": float(within["epoch_time_s"].sum()),
                           "slots_busy_in_epochs": float(within["epoch_time_s"].sum()) / (2 * budget_s)}
    per_trial = []
    for _, trial in within.groupby("trial"):
        # From the trial's start to its last epoch in the budget, minus its epochs: time outside epochs.
        per_trial.append(float(trial["t"].max() - trial["trial_started_t"].iloc[0] - trial["epoch_time_s"].sum()))
    out["outside_epochs_per_trial_s"] = float(np.median(per_trial)) if per_trial else math.nan
    # The slowest configs: share of the epoch time spent in trials whose epochs took over 3x the median.
    slow = within.groupby("trial")["epoch_time_s"].median() > 3 * out["median_epoch_s"]
    out["epoch_s_in_slow_configs"] = float(within[within["trial"].isin(slow[slow].index)]["epoch_time_s"].sum())
    if method == "ray_asha_tpe" and run_dir is not None:
        info = json.loads((run_dir / "run.json").read_text())
        out["ray_start_s"] = info.get("ray_start_s")
        out["first_trial_running_s"] = float(within["trial_started_t"].min()) if len(within) else math.nan
        first = within.sort_values("epoch").groupby("trial").head(1)
        # The first report's extra over its epoch: the cost figures (MACs, latency at batch 1 and 64). A run that
        # reported no epoch (launch.py failed, or a loaded machine gave it none within the budget) has no column.
        out["first_report_extra_s_median"] = (float((first["time_this_iter_s"] - first["epoch_time_s"]).median())
                                              if "time_this_iter_s" in first else math.nan)
    return out


def winner(events: pd.DataFrame, budget_s: float) -> tuple[str | None, float]:
    """The trial with the best epoch reported within the budget, and that value."""
    within = events[(events["t"] <= budget_s)].dropna(subset=[METRIC])
    if not len(within):
        return None, math.nan
    row = within.loc[within[METRIC].idxmax()]
    return str(row["trial"]), float(row[METRIC])


def retrain_all(args: argparse.Namespace, configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each method's winner retrained once, the three side by side (same conditions again)."""
    work = Path(args.work)
    procs = {}
    for method, config in configs.items():
        config_file, result = work / f"{method}.winner.json", work / f"{method}.retrained.json"
        config_file.write_text(json.dumps(config, default=str))
        procs[method] = (subprocess.Popen(_self_command(args, "--retrain", "--config", str(config_file), "--result",
                                                        str(result)), cwd=ROOT, env=_env(),
                                          stdout=open(work / f"{method}.retrain.log", "w"), stderr=subprocess.STDOUT),
                         result)
    out = {}
    for method, (proc, result) in procs.items():
        proc.wait()
        out[method] = json.loads(result.read_text()) if proc.returncode == 0 and result.exists() else {}
    return out


def summarise(args: argparse.Namespace, curves: dict[str, pd.DataFrame], counts: dict[str, dict[str, int]],
              retrained: dict[str, dict[str, Any]], load: LoadSampler, winners: dict[str, tuple[str | None, float]],
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    budget = args.budget_min * 60
    random_final = best_by(curves["random_full"], budget)
    rows = []
    for method in METHODS:
        curve = curves[method]
        row: dict[str, Any] = {"method": method, "trials": counts[method]["trials"],
                               "trial_epochs": counts[method]["trial_epochs"]}
        for q in (0.25, 0.5, 0.75, 1.0):
            row[f"best_at_{int(q * 100)}pct"] = best_by(curve, q * budget)
        row["time_to_random_final_s"] = time_to_reach(curve, random_final)
        row["first_epoch_s"] = float(curve["t"].iloc[0]) if len(curve) else math.nan
        row["winner_trial"] = winners[method][0]
        for key in ("val_micro_f1", "test_micro_f1", "best_epoch", "retrain_s"):
            row[f"retrained_{key}"] = retrained.get(method, {}).get(key, math.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    loads = pd.DataFrame(load.samples, columns=["time", "load_1min", "load_5min", "load_15min"])
    return table, loads


def plot(curves: dict[str, pd.DataFrame], budget_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, curve in curves.items():
        if len(curve):
            ax.step([*curve["t"], budget_s], [*curve["best"], curve["best"].iloc[-1]], where="post", label=method)
    ax.set_xlabel("wall time since launch (s)")
    ax.set_ylabel(f"best {METRIC} so far")
    ax.set_xlim(0, budget_s)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_readme(out: Path, args: argparse.Namespace, table: pd.DataFrame, load: LoadSampler,
                 split_same: bool, command: str, profiles: pd.DataFrame, ray_failure: str | None) -> None:
    fmt = table.copy()
    lines = [
        "# bench_peer: this system against plain Optuna and random search", "",
        f"Command: `{command}`", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; the three methods at the "
        f"same time for {args.budget_min:g} min each, 2 trials at a time each; load average (1 min) over the "
        f"window: mean {load.mean_1min():.1f}, min {min((s[1] for s in load.samples), default=math.nan):.1f}, "
        f"max {max((s[1] for s in load.samples), default=math.nan):.1f} (`load.csv`).",
        f"GRU space, {args.records} synthetic records (7:1:2, seed {args.seed}), {args.epochs} epochs per trial, "
        f"rungs/brackets from epoch {args.grace_period}, reduction factor {args.reduction_factor}. "
        f"launch.py's split equal to the bench's: {split_same}.", "",
        "| method | first epoch reported at | trials | trial-epochs | best val micro-F1 at 25% / 50% / 75% / 100% "
        "of the budget | time to reach (c)'s final best | retrained winner: val / test micro-F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in fmt.itertuples():
        at = " / ".join(f"{getattr(row, f'best_at_{p}pct'):.4f}" for p in (25, 50, 75, 100))
        reach = f"{row.time_to_random_final_s:.0f} s" if not math.isnan(row.time_to_random_final_s) else "never"
        lines.append(f"| {row.method} | {row.first_epoch_s:.0f} s | {row.trials} | {row.trial_epochs} | {at} | {reach} | "
                     f"{row.retrained_val_micro_f1:.4f} / {row.retrained_test_micro_f1:.4f} |")
    if ray_failure:
        lines += ["", f"**(a) failed**: {ray_failure} (its log: `ray_asha_tpe.log` in the work folder)."]
    lines += ["", "Profile (`profile.csv`): where each method's time went within the budget.", "",
              "| method | first epoch at (s) | median epoch (s) | two slots' time inside epochs | time outside "
              "epochs per trial, median (s) | epoch seconds in configs > 3x the median epoch |",
              "|---|---|---|---|---|---|"]
    for row in profiles.itertuples():
        lines.append(f"| {row.method} | {row.first_epoch_s:.0f} | {row.median_epoch_s:.1f} | "
                     f"{row.slots_busy_in_epochs:.0%} | {row.outside_epochs_per_trial_s:.1f} | "
                     f"{row.epoch_s_in_slow_configs:.0f} of {row.epoch_s_total:.0f} |")
    ray = profiles.set_index("method").loc["ray_asha_tpe"]
    if "ray_start_s" in profiles:
        lines += ["", f"(a) before its first epoch: Ray start {ray['ray_start_s']:.0f} s, its first trial RUNNING "
                  f"at {ray['first_trial_running_s']:.0f} s after launch (imports, data, Ray, the trial's worker "
                  f"process), first epoch reported at {ray['first_epoch_s']:.0f} s; the first report of a trial "
                  f"takes a median {ray['first_report_extra_s_median']:.1f} s more than its epoch (the trial's "
                  "cost figures: MACs, latency at batch 1 and 64)."]
    lines += ["", "Files: `summary.csv` (the table), `profile.csv`, `curves.csv` (best so far against time per method), "
              "`events.csv` (every reported epoch), `load.csv`, `curves.png`. How each figure is made: the "
              "docstring of bench/bench_peer.py.", ""]
    (out / "README.md").write_text("\n".join(lines))


def parent(args: argparse.Namespace, argv: Sequence[str]) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    args.work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    work = Path(args.work)
    split = load_split(args, work / "split.csv")  # also warms the data cache for every method
    print(f"data: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test records; "
          f"work folder {work}", flush=True)
    budget = args.budget_min * 60
    with LoadSampler() as load:
        deadline = time.time() + budget
        launched = launch_all(args, deadline)
        stop_at_deadline(launched, deadline)
    starts = {item.method: item.started for item in launched}
    # launch.py exits 130 after Ctrl-C; anything else means it failed, and the README says how.
    ray_exit = launched[0].processes[0].returncode
    ray_log = [line for line in (work / "ray_asha_tpe.log").read_text(errors="replace").splitlines() if line.strip()]
    ray_failure = None if ray_exit in (0, 130) else f"launch.py exited {ray_exit}: {(ray_log or ['?'])[-1][:300]}"
    events, configs, counts, curves, winners = {}, {}, {}, {}, {}
    ray_frame, configs["ray_asha_tpe"], ray_run = ray_events(work, starts["ray_asha_tpe"])
    events["ray_asha_tpe"] = ray_frame
    for method in METHODS[1:]:
        events[method], configs[method] = optuna_events(work, method, starts[method])
    split_same = bool(ray_run is not None and (ray_run / "split.csv").exists() and
                      pd.read_csv(ray_run / "split.csv").equals(pd.read_csv(work / "split.csv")))
    chosen = {}
    for method in METHODS:
        within = events[method][events[method]["t"] <= budget]
        curves[method] = best_curve(within)
        counts[method] = {"trials": int(within["trial"].nunique()), "trial_epochs": int(len(within))}
        winners[method] = winner(events[method], budget)
        if winners[method][0] is not None:
            chosen[method] = configs[method][winners[method][0]]
        print(f"{method}: {counts[method]['trials']} trials, {counts[method]['trial_epochs']} trial-epochs within "
              f"the budget, best {winners[method][1]:.4f}", flush=True)
    retrained = retrain_all(args, chosen)
    table, loads = summarise(args, curves, counts, retrained, load, winners)
    profiles = pd.DataFrame([profile(m, events[m], budget, ray_run if m == "ray_asha_tpe" else None)
                             for m in METHODS])
    profiles.to_csv(out / "profile.csv", index=False)
    table.to_csv(out / "summary.csv", index=False)
    loads.to_csv(out / "load.csv", index=False)
    pd.concat([c.assign(method=m) for m, c in curves.items()], ignore_index=True).to_csv(out / "curves.csv", index=False)
    pd.concat([e.assign(method=m) for m, e in events.items()], ignore_index=True).to_csv(out / "events.csv", index=False)
    plot(curves, budget, out / "curves.png")
    command = "python bench/bench_peer.py " + shlex.join(argv)
    write_readme(out, args, table, load, split_same, command.strip(), profiles, ray_failure)
    print("\n" + (out / "README.md").read_text())
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="toy sizes for CI: every step runs; figures are noise")
    p.add_argument("--budget-min", type=float, default=7.0, help="wall-clock budget of each method (minutes)")
    p.add_argument("--records", type=int, default=600, help="synthetic records (bench_search.py's size)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per trial (ASHA's max_t, Hyperband's max_resource)")
    p.add_argument("--grace-period", type=int, default=2, help="ASHA's first rung (the CPU default)")
    p.add_argument("--reduction-factor", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="where the figures go (default bench/results/peer, or bench/out/peer-smoke with --smoke)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (run folders, studies, logs)")
    # Internal: the worker processes the parent starts.
    p.add_argument("--worker", choices=METHODS[1:], help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--storage", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    p.add_argument("--retrain", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke and not (args.worker or args.retrain):
        args.budget_min, args.records, args.epochs, args.grace_period = 1.5, 120, 2, 1
    if args.out is None:
        args.out = ROOT / "bench" / ("out/peer-smoke" if args.smoke else "results/peer")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        optuna_worker(args)
    elif args.retrain:
        retrain_worker(args)
    else:
        parent(args, argv)


if __name__ == "__main__":
    main()
