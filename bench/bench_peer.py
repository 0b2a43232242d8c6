"""This system against what a strong engineer would use instead, over seeds, budgets and spaces (issue 27).

    python bench/bench_peer.py --seeds 5                  # the protocol: every piece not yet in seeds.csv
    python bench/bench_peer.py --seeds 5 --pieces 1       # one piece (seed x space x budget), then exit
    python bench/bench_peer.py --summarize                # the summary, tables and plot from seeds.csv alone
    python bench/bench_peer.py --alone --seeds 5 --pieces 1
                                                          # the other equal condition: each method alone, in turn
    python bench/bench_peer.py --common-draws 10 --out DIR
                                                          # the first 10 configurations common to the methods
    python bench/bench_peer.py --summarize --gather DIR...  --out DIR
                                                          # one summary of methods run alone, a folder each
    python bench/bench_peer.py --startup 5                # launch.py to its first reported epoch (startup.csv)
    python bench/bench_peer.py --ray-cost 3 --variant no_dashboard=--no-dashboard
                                                          # Ray's own CPU inside one method's share (ray_cost.csv)
    python bench/bench_peer.py --smoke                    # toy sizes for CI; figures are noise

The protocol: seeds 0..N-1 (each seed its own synthetic data draw, split, sampler and training seeds), spaces
`gru` and `all`, budgets 7 and 14 minutes of wall time per method. One PIECE is a seed x space x budget: the five
methods run side by side over the same window, then each one's winner is retrained, and the piece's five rows
are appended to seeds.csv at once (its curves to curves.csv). A piece already in seeds.csv is skipped, so the
protocol runs in pieces (`--pieces 1` per call, so that others get the machine between pieces) and survives an
interruption (a piece cut short writes nothing and runs again).

The methods (bench/peer_methods.py says how each peer is written), two trials at a time each, one CPU thread per
trial, the same space function, data, split, epoch budget per trial (launch.py's CPU default, 6) and
`ecg.train.fit`:
  this_system       `launch.py --space S --seed s` with its defaults (Ray Tune + Optuna TPE + ASHA, CPU rungs),
                    stopped with Ctrl-C (SIGINT) at the budget, as a user would stop it;
  optuna_hyperband  Optuna TPE (its defaults) + HyperbandPruner, two processes on one SQLite study;
  random            random search, no pruning;
  dehb              DEHB (the `dehb` package), fidelity = epochs;
  one_epoch_topk    every config one epoch for half the budget, then the best ones to the end.

Equal conditions: the five run AT THE SAME TIME over the same window (the machine is shared, and its load
changes by the minute: one after another, each would meet different conditions), in a launch order that rotates
with the piece. Each method's processes (for this system: launch.py and every Ray process it starts) run in a
cgroup of their own with a HARD CAP of CPUS / METHODS (2/5 of the two CPUs when five run side by side: cgroup v1's
cpu.cfs_quota_us, v2's cpu.max), so each method gets the same CPU time however many processes and threads it has
(equal cgroup weights alone did not: this system's group got over twice a peer's CPU, NOTES.md). The bench's own
parent group weighs one default weight per method against the machine's other work, so the caps, not other
engineers' jobs, are what binds. `cpu_share` says "cgroup-v1-cap"/"cgroup-v2-cap", or "none" where cgroups
cannot be written (then Linux shares per thread); `cpu_s` records what each method really used (the check that
the shares were equal) and `throttled_s` how long its cap held it back. The retraining runs without caps (a
fixed number of epochs: speed does not change its result). Each method's clock starts at its own launch; its imports, data load
and (this system's) Ray start count against its budget. The load average is sampled every 10 s; each row holds
its mean over the window.

The issue's other equal condition, `--alone` (default --out bench/results/peer/alone): each method ALONE on the
machine (its cap: every CPU), one after another in the launch order that rotates with the seed; there a piece is
one method x seed x space x budget, and seeds.csv's `launch_order` is the method's place in that order.

Per row of seeds.csv: `best_val` (best validation micro-F1 of any epoch reported within the budget), its
winner retrained once with `ecg.train.fit` for the same epochs on the same split and scored on the test split
(`test_micro_f1`, labels at 0.5, the epoch chosen on validation; the five retrainings run side by side too),
`first_epoch_s` (launch to the first reported epoch), trials and trial-epochs within the budget, `cpu_s` (the CPU
seconds the method's processes had used by its deadline, from its cgroup: the check that the shares were equal;
`throttled_s`, how long its cap held it back) and,
for this system, run.json's `ray_start_s`.
"""
from __future__ import annotations

import argparse
import itertools
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peer_stats import (METRIC, PIECE, SEEDS_COLUMNS, THIS, best_by, best_curve, done_pieces, mean_curves,  # noqa: E402
                        method_means, paired, protocol_command, winner)

METHODS = (THIS, "optuna_hyperband", "random", "dehb", "one_epoch_topk")
SPACES = ("gru", "all")
BUDGETS_MIN = (7.0, 14.0)
STUDY = "peer"
EVENT_COLUMNS = ["t", "trial", "epoch", METRIC, "epoch_time_s"]


# ----------------------------------------------------------------------------------------------------------
# The data every method uses
# ----------------------------------------------------------------------------------------------------------

def search_options(args: argparse.Namespace) -> Any:
    """The search every method runs: launch.py's CPU defaults for the space, for this seed."""
    from search.options import SearchOptions

    return SearchOptions(space=args.space, n_records=args.records, max_epochs=args.epochs,
                         grace_period=args.grace_period, seed=args.seed, cpus_per_trial=1.0).resolved(0)


def load_split(args: argparse.Namespace, split_csv: Path) -> Any:
    """The records and the split every method uses (written to `split_csv` by the first caller), at every input
    rate the space samples, as the search resamples them."""
    from search import data as run_data

    options = search_options(args)
    dataset, source = run_data.load(options)
    split = run_data.split(dataset, seed=options.seed, source=source, existing=split_csv,
                           spec=run_data.data_spec(options))
    if not split_csv.exists():
        split.save(split_csv)
    return run_data.with_space_rates(split, options)


# ----------------------------------------------------------------------------------------------------------
# Equal conditions: a cgroup per method, the load average
# ----------------------------------------------------------------------------------------------------------

_GROUP_NUMBERS = itertools.count()


class CpuShares:
    """One cgroup per method under a group of this bench's own, each method's capped at `cpus / len(methods)`
    CPUs (a hard quota per 100 ms period): the methods get the same CPU time whatever their number of processes.
    Where cgroups cannot be written, `kind` is "none" and the processes share the CPUs as Linux shares threads.
    `cpu_s` reads the CPU seconds each method's processes used, `throttled_s` the time its cap held it back."""

    PERIOD_US = 100_000

    def __init__(self, methods: Sequence[str], cpus: float | None = None) -> None:
        self.kind, self.groups, self.methods = "none", [], list(methods)
        self.quota_us = int(round((cpus or os.cpu_count() or 1) / len(self.methods) * self.PERIOD_US))
        # Unique per instance: a bench that measures launch after launch makes one per launch, and a group whose
        # last process (a Ray daemon outliving its driver) has not gone yet is left behind, still named.
        name = f"bench-peer-{os.getpid()}-{next(_GROUP_NUMBERS)}"
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        try:
            if (v1 / "cpu.cfs_quota_us").exists():
                self.kind, self.groups = "cgroup-v1-cap", [v1 / name]
                if (v2 / "cpuacct" / "cpuacct.usage").exists():
                    self.groups.append(v2 / "cpuacct" / name)
            elif "cpu" in (v2 / "cgroup.controllers").read_text().split():
                self.kind, self.groups = "cgroup-v2-cap", [v2 / name]
                (v2 / "cgroup.subtree_control").write_text("+cpu")
            else:
                return
            for group in self.groups:
                group.mkdir()
                for method in self.methods:
                    (group / method).mkdir()
            cpu = self.groups[0]
            if self.kind == "cgroup-v2-cap":
                (cpu / "cgroup.subtree_control").write_text("+cpu")
                (cpu / "cpu.weight").write_text(str(100 * len(self.methods)))
            else:
                (cpu / "cpu.shares").write_text(str(1024 * len(self.methods)))
            self.cap(True)
        except OSError:
            self.close()
            self.kind, self.groups = "none", []

    def cap(self, on: bool) -> None:
        """Set (or lift) every method's hard cap."""
        if self.kind == "none":
            return
        cpu = self.groups[0]
        for method in self.methods:
            if self.kind == "cgroup-v2-cap":
                (cpu / method / "cpu.max").write_text(f"{self.quota_us if on else 'max'} {self.PERIOD_US}")
            else:
                (cpu / method / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
                (cpu / method / "cpu.cfs_quota_us").write_text(str(self.quota_us if on else -1))

    def join(self, method: str, pid: int) -> None:
        """Put process `pid` (and so the processes it starts afterwards) into `method`'s cgroups."""
        for group in self.groups:
            (group / method / "cgroup.procs").write_text(str(pid))

    def cpu_s(self, method: str) -> float:
        """CPU seconds `method`'s processes have used so far (NaN without cgroups)."""
        for group in self.groups:
            if (group / method / "cpuacct.usage").exists():
                return int((group / method / "cpuacct.usage").read_text()) / 1e9
            if self.kind == "cgroup-v2-cap":
                return self._stat(method)["usage_usec"] / 1e6
        return math.nan

    def throttled_s(self, method: str) -> float:
        """Seconds `method`'s cap has held its processes back so far (NaN without cgroups)."""
        if self.kind == "none":
            return math.nan
        stat = self._stat(method)
        return stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else stat["throttled_time"] / 1e9

    def _stat(self, method: str) -> dict[str, int]:
        lines = (self.groups[0] / method / "cpu.stat").read_text().splitlines()
        return {key: int(value) for key, value in (line.split() for line in lines)}

    def close(self) -> None:
        """Remove the cgroups (each once its processes have gone; a leftover one is left, empty of use)."""
        for group in self.groups:
            for child in [*group.iterdir(), group] if group.is_dir() else []:
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError:
                        pass


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


# ----------------------------------------------------------------------------------------------------------
# One piece: launch the five methods, stop each at its budget, read what they did, retrain the winners
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Launched:
    method: str
    processes: list[subprocess.Popen]
    started: float
    deadline: float
    logs: list[Any] = field(default_factory=list)
    cpu_s: float = math.nan  # CPU seconds its processes had used at its deadline
    throttled_s: float = math.nan  # seconds its cap had held it back by its deadline


def _self_command(args: argparse.Namespace, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--space", args.space, "--records", str(args.records),
            "--epochs", str(args.epochs), "--grace-period", str(args.grace_period), "--seed", str(args.seed),
            "--work", str(args.work), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _popen(command: list[str], log: Path, shares: CpuShares, method: str) -> subprocess.Popen:
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own session: SIGINT reaches it alone
    shares.join(method, proc.pid)
    return proc


def this_system_command(args: argparse.Namespace) -> list[str]:
    """launch.py with its defaults for the space; only the data's size and seed (and the toy epochs of
    --smoke) are given, with enough trials to outlast any budget and the results in the work folder; with
    --common-draws, the piece's common draws as its warm starts."""
    command = [sys.executable, str(ROOT / "launch.py"), "--space", args.space, "--seed", str(args.seed),
               "--n-records", str(args.records), "--num-samples", "100000", "--top-k", "1",
               "--results-dir", str(Path(args.work) / "ray")]
    if args.smoke:
        command += ["--max-epochs", str(args.epochs), "--grace-period", str(args.grace_period)]
    if args.common_draws:
        command += ["--warm-start", str(Path(args.work) / COMMON_DRAWS_CSV)]
    return command


COMMON_DRAWS_CSV = "common_draws.csv"  # the piece's common draws as launch.py --warm-start rows


def write_common_draws(args: argparse.Namespace, split: Any) -> list[dict[str, Any]]:
    """--common-draws: the piece's first configurations for every method (`peer_methods.common_draws`), written
    as the warm-start CSV launch.py reads; their study parameters, for the Optuna peers' `enqueue_trial`."""
    from peer_methods import common_draws, space_over

    draws = common_draws(space_over(args, split), args.seed, args.common_draws)
    pd.DataFrame([flat for _, flat in draws]).to_csv(Path(args.work) / COMMON_DRAWS_CSV, index=False)
    return [params for params, _ in draws]


def launch(method: str, args: argparse.Namespace, budget_s: float, shares: CpuShares,
           first: Sequence[dict[str, Any]] = ()) -> Launched:
    """Start one method; its clock (and deadline) starts now. An Optuna peer's study gets `first` (the common
    draws' study parameters) enqueued; this system reads them as warm starts (`this_system_command`)."""
    import optuna

    work = Path(args.work)
    started = time.time()
    deadline = started + budget_s
    timing = ["--deadline", f"{deadline:.3f}", "--started", f"{started:.3f}"]
    if method == THIS:
        procs = [_popen(this_system_command(args), work / f"{method}.log", shares, method)]
    elif method == "dehb":
        procs = [_popen(_self_command(args, "--worker", method, *timing), work / f"{method}.log", shares, method)]
    else:
        storage = f"sqlite:///{work / (method + '.db')}"
        study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
        for params in first:
            study.enqueue_trial(params)
        procs = [_popen(_self_command(args, "--worker", method, "--worker-index", str(i), "--storage", storage,
                                      *timing), work / f"{method}-{i}.log", shares, method) for i in range(2)]
    return Launched(method, procs, started, deadline)


def stop_at_deadlines(launched: list[Launched], shares: CpuShares) -> None:
    """At each method's deadline: its CPU seconds read, then Ctrl-C (SIGINT) to launch.py, which stops its
    trials and exports what finished; the other methods stop themselves at their next epoch (terminated if
    they overrun)."""
    for item in sorted(launched, key=lambda x: x.deadline):
        time.sleep(max(0.0, item.deadline - time.time()))
        item.cpu_s, item.throttled_s = shares.cpu_s(item.method), shares.throttled_s(item.method)
        if item.method == THIS and item.processes[0].poll() is None:
            item.processes[0].send_signal(signal.SIGINT)
    grace = time.time() + 180  # an epoch in flight, and launch.py's exports
    for item in launched:
        for proc in item.processes:
            try:
                proc.wait(timeout=max(1.0, grace - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def this_system_events(work: Path, space: str, started: float) -> tuple[pd.DataFrame, dict[str, dict], dict]:
    """this_system's reported epochs (time = the trial's RUNNING time + Ray's time_total_s at the report),
    each trial's flat config, and run.json's ray_start_s."""
    from bench_search import read_run
    from ecg.run_folder import EXPERIMENT, TRIALS, RunFolder
    from search.exports import read_trials

    runs = sorted((work / "ray").glob(f"{space}-*"))
    if not runs:
        return pd.DataFrame(columns=EVENT_COLUMNS), {}, {}
    run = runs[-1]
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    experiment = RunFolder.open(run).experiment_dir(info.get("args", {}).get("storage_path")) \
        if (run / "run.json").exists() else run / EXPERIMENT
    configs = {r.trial_id: r.config for r in read_trials(experiment).records} if experiment.exists() else {}
    if not (run / TRIALS).exists():  # stopped before its search began: no trial
        return pd.DataFrame(columns=EVENT_COLUMNS), configs, info
    _, events = read_run(run)
    if not len(events):
        return pd.DataFrame(columns=EVENT_COLUMNS), configs, info
    frame = pd.DataFrame({"t": events["at"] - started, "trial": events["trial_id"].astype(str),
                          "epoch": events["epoch"], METRIC: events[METRIC], "epoch_time_s": events["epoch_time_s"]})
    return frame, configs, info


def peer_events(work: Path, method: str, started: float) -> tuple[pd.DataFrame, dict[str, dict]]:
    """A peer's reported epochs and trial configs, from its workers' files."""
    frames, configs = [], {}
    for events in sorted(work.glob(f"{method}-*.events.csv")):
        frames.append(pd.read_csv(events, names=["time", "trial", "epoch", METRIC, "epoch_time_s"],
                                  dtype={"trial": str}))
    for lines in sorted(work.glob(f"{method}-*.configs.jsonl")):
        for line in lines.read_text().splitlines():
            entry = json.loads(line)
            configs[str(entry["trial"])] = entry["config"]
    if not frames:
        return pd.DataFrame(columns=EVENT_COLUMNS), configs
    frame = pd.concat(frames, ignore_index=True)
    frame["t"] = frame["time"] - started
    return frame[EVENT_COLUMNS], configs


def retrain_all(args: argparse.Namespace, configs: dict[str, dict[str, Any]], shares: CpuShares,
                ) -> dict[str, dict[str, Any]]:
    """Each method's winner retrained once, side by side, each in its method's cgroup."""
    work = Path(args.work)
    procs = {}
    for method, config in configs.items():
        config_file, result = work / f"{method}.winner.json", work / f"{method}.retrained.json"
        config_file.write_text(json.dumps(config, default=str))
        command = _self_command(args, "--retrain", "--config", str(config_file), "--result", str(result))
        procs[method] = (_popen(command, work / f"{method}.retrain.log", shares, method), result)
    out = {}
    for method, (proc, result) in procs.items():
        proc.wait()
        out[method] = json.loads(result.read_text()) if proc.returncode == 0 and result.exists() else {}
    return out


def launch_order(methods: Sequence[str], seed: int, space: str) -> list[str]:
    """`methods` in the order a piece launches them (side by side) or runs them (--alone): rotated by the seed
    and the space, so that no method is always first."""
    rotation = (seed + SPACES.index(space) if space in SPACES else seed) % len(methods)
    return list(methods[rotation:]) + list(methods[:rotation])


def run_piece(args: argparse.Namespace, seed: int, space: str, budget_min: float,
              methods: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One seed x space x budget: `methods` side by side (one of them: alone); their rows for seeds.csv and their
    curves."""
    args.seed, args.space = seed, space
    args.work = Path(tempfile.mkdtemp(prefix=f"bench-peer-{space}-{seed}-"))
    work = Path(args.work)
    split = load_split(args, work / "split.csv")  # also warms the data cache for every method
    first = write_common_draws(args, split) if args.common_draws else []
    budget = budget_min * 60
    order = launch_order(methods, seed, space)
    print(f"piece seed {seed}, {space}, {budget_min:g} min: {len(split.train)}/{len(split.val)}/{len(split.test)} "
          f"records, launch order {', '.join(order)}; work folder {work}", flush=True)
    version = code_version()
    shares = CpuShares(methods)
    try:
        with LoadSampler() as load:
            launched = [launch(method, args, budget, shares, first) for method in order]
            stop_at_deadlines(launched, shares)
        shares.cap(False)  # the retraining runs uncapped: a fixed number of epochs, speed does not change it
        by_method = {item.method: item for item in launched}
        events, configs, infos = {}, {}, {}
        for method in methods:
            if method == THIS:
                events[method], configs[method], infos[method] = this_system_events(work, space,
                                                                                    by_method[method].started)
            else:
                events[method], configs[method] = peer_events(work, method, by_method[method].started)
        chosen, winners = {}, {}
        for method in methods:
            winners[method] = winner(events[method], budget)
            if winners[method][0] is not None:
                chosen[method] = configs[method][winners[method][0]]
        retrained = retrain_all(args, chosen, shares)
    finally:
        shares.close()
    rows, curves = [], []
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for method in methods:
        within = events[method][events[method]["t"] <= budget]
        curve = best_curve(within)
        curves.append(curve.assign(method=method, seed=seed, space=space, budget_min=budget_min))
        rows.append({"method": method, "seed": seed, "budget_min": budget_min, "space": space,
                     "best_val": winners[method][1], "test_micro_f1": retrained.get(method, {}).get("test_micro_f1",
                                                                                                    math.nan),
                     "first_epoch_s": float(within["t"].min()) if len(within) else math.nan,
                     "trials": int(within["trial"].nunique()), "trial_epochs": int(len(within)),
                     "load_avg": round(load.mean_1min(), 2),
                     "retrained_val_micro_f1": retrained.get(method, {}).get("val_micro_f1", math.nan),
                     "best_at_50pct": best_by(curve, budget / 2), "winner": winners[method][0],
                     "cpu_share": shares.kind, "launch_order": order.index(method), "records": args.records,
                     "epochs": args.epochs, "finished_utc": finished,
                     "ray_start_s": infos.get(method, {}).get("ray_start_s", math.nan),
                     "median_epoch_s": float(within["epoch_time_s"].median()) if len(within) else math.nan,
                     "cpu_s": round(by_method[method].cpu_s, 1),
                     "throttled_s": round(by_method[method].throttled_s, 1), "code": version})
        print(f"  {method}: {rows[-1]['trials']} trials, {rows[-1]['trial_epochs']} trial-epochs, first epoch at "
              f"{rows[-1]['first_epoch_s']:.0f} s, best val {rows[-1]['best_val']:.4f}, retrained test "
              f"{rows[-1]['test_micro_f1']:.4f}", flush=True)
    if args.keep:
        print(f"  work folder kept: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def code_version() -> str:
    """The checkout's commit (short), "+" when its code (anything outside bench/results) had changes: which
    system a piece measured."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30).stdout
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results").strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("+" if dirty else "")


def append_csv(frame: pd.DataFrame, path: Path) -> None:
    """Append rows (a header only for a new file), flushed at once: finished pieces are never lost."""
    new = not path.exists()
    with open(path, "a") as out:
        frame.to_csv(out, header=new, index=False)
        out.flush()
        os.fsync(out.fileno())


def read_seeds(out: Path) -> pd.DataFrame:
    path = out / "seeds.csv"
    return pd.read_csv(path, dtype={"winner": str}) if path.exists() else pd.DataFrame(columns=SEEDS_COLUMNS)


# ----------------------------------------------------------------------------------------------------------
# The summary: tables, README and plot from seeds.csv and curves.csv alone
# ----------------------------------------------------------------------------------------------------------

def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = mean_curves(curves)
    panels = sorted({(s, b) for s, b in zip(means["space"], means["budget_min"])})
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 4), squeeze=False)
    for ax, (space, budget) in zip(axes[0], panels):
        panel = means[(means["space"] == space) & (means["budget_min"] == budget)]
        for method, line in panel.groupby("method"):
            ax.plot(line["t"], line["mean_best"], label=f"{method} ({int(line['seeds'].iloc[0])} seeds)")
        ax.set_title(f"{space}, {budget:g} min")
        ax.set_xlabel("wall time since launch (s)")
        ax.set_ylabel(f"best {METRIC} so far, mean over seeds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def default_out(smoke: bool, alone: bool = False) -> Path:
    """Where the figures go without --out."""
    return ROOT / "bench" / ("out/peer-smoke" if smoke else "results/peer") / ("alone" if alone else "")


def _shown(path: Path) -> str:
    """`path` relative to the checkout when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _options(out: Path, smoke: bool, alone: bool = False) -> str:
    """--smoke, --alone and --out as the README's commands say them: --out only away from its default, relative
    to the checkout inside it."""
    out = Path(out).resolve()
    where = "" if out == default_out(smoke, alone).resolve() else f" --out {shlex.quote(_shown(out))}"
    return (" --smoke" if smoke else "") + (" --alone" if alone else "") + where


class BenchError(ValueError):
    """A request the bench refuses, in one line: a folder --gather cannot take pieces from, pieces of another
    condition than the folder holds."""


# How a folder's pieces were run: {"condition": "side_by_side" | "alone", "common_draws": N, "gathered_from": [...]}
CONDITION = "condition.json"
SIDE_BY_SIDE = {"condition": "side_by_side", "common_draws": 0}  # a folder without condition.json: the first runs


def condition_of(args: argparse.Namespace) -> dict[str, Any]:
    """How this call runs its pieces."""
    return {"condition": "alone" if args.alone else "side_by_side", "common_draws": args.common_draws}


def described(condition: dict[str, Any]) -> str:
    return (condition["condition"].replace("_", " ")
            + (f" with {condition['common_draws']} common draws" if condition.get("common_draws") else ""))


def write_condition(out: Path, condition: dict[str, Any]) -> None:
    """Record in `out` how its pieces ran (`gather` rewrites it). A folder holds pieces of one condition only:
    BenchError for a run of another."""
    held = read_condition(out)
    same = all(held[key] == condition[key] for key in SIDE_BY_SIDE)  # the condition and its common draws
    if "gathered_from" not in condition and not same and len(read_seeds(out)):
        raise BenchError(f"{out} holds pieces run {described(held)}; run pieces {described(condition)} into "
                         f"another --out")
    if "gathered_from" in condition or not (out / CONDITION).exists():
        (out / CONDITION).write_text(json.dumps(condition) + "\n")


def read_condition(out: Path) -> dict[str, Any]:
    """`out`'s condition.json; without one, pieces were run side by side with no common draws."""
    path = out / CONDITION
    return {**SIDE_BY_SIDE, **(json.loads(path.read_text()) if path.exists() else {})}


def gather(out: Path, folders: Sequence[Path]) -> None:
    """Write `out`'s seeds.csv and curves.csv anew from every piece of `folders`, and name them in its
    condition.json (the other equal condition: each method run alone, with its own --out, one folder per method).
    BenchError for a folder without seeds.csv, for `out` itself among them, for folders whose pieces ran with
    different common draws, and for a piece (method, seed, budget, space) that two folders hold."""
    out = Path(out).resolve()
    seeds, curves = [], []
    draws: set[int] = set()
    for folder in folders:
        folder = Path(folder).resolve()
        if folder == out:
            raise BenchError(f"--gather {folder}: that is --out itself; gather into another folder")
        if not (folder / "seeds.csv").is_file():
            raise BenchError(f"--gather {folder}: no seeds.csv there (not a bench_peer --out folder?)")
        held = read_condition(folder)["common_draws"]
        if draws and held not in draws:
            raise BenchError(f"--gather {folder}: its pieces ran with {held} common draws, the folders before it "
                             f"with {next(iter(draws))}")
        draws.add(held)
        seeds.append(read_seeds(folder))
        if (folder / "curves.csv").is_file():
            curves.append(pd.read_csv(folder / "curves.csv"))
    merged = pd.concat(seeds, ignore_index=True)
    twice = merged[merged.duplicated(["method", "seed", "budget_min", "space"], keep=False)]
    if len(twice):
        r = twice.iloc[0]
        raise BenchError(f"--gather: {r.method} seed {r.seed} at {r.budget_min:g} min on {r.space} is in two of "
                         f"the folders; gather each piece from one")
    out.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out / "seeds.csv", index=False)
    if curves:
        pd.concat(curves, ignore_index=True).to_csv(out / "curves.csv", index=False)
    else:
        (out / "curves.csv").unlink(missing_ok=True)  # another gathering's curves are not these pieces'
    write_condition(out, {"condition": "alone", "common_draws": draws.pop(),
                          "gathered_from": [_shown(Path(f).resolve()) for f in folders]})


def summarize(out: Path, command: str, smoke: bool = False) -> str:
    """summary.csv (means), paired.csv (this system minus each peer), curves.png and README.md; the README."""
    seeds = read_seeds(out)
    if not len(seeds):
        return "no pieces yet"
    means, pairs = method_means(seeds), paired(seeds, "test_micro_f1")
    pairs_val = paired(seeds, "best_val")
    condition = read_condition(out)
    sources = condition.get("gathered_from", [])
    alone = condition["condition"] == "alone" and not sources  # a gathered folder was not run by --alone
    flags = _options(out, smoke, alone)
    means.to_csv(out / "summary.csv", index=False)
    pd.concat([pairs, pairs_val], ignore_index=True).to_csv(out / "paired.csv", index=False)
    if (out / "curves.csv").exists():
        plot(pd.read_csv(out / "curves.csv"), out / "curves.png")
    if sources:  # pieces run elsewhere, each method alone: their folders name their calls
        how = (f"Gathered from {', '.join(f'`{s}`' for s in sources)} (each a method run alone; each folder's "
               f"README names the call that ran its pieces) by `python bench/bench_peer.py --summarize --gather "
               f"{shlex.join(sources)}{flags}`. Last written by `{command}`.")
    else:
        draws = f" --common-draws {condition['common_draws']}" if condition["common_draws"] else ""
        how = (f"Command: `{protocol_command(seeds, METHODS)}{draws}{flags}` (one piece per call, each call the next "
               f"piece{': one method alone on the machine, the methods in turn' if alone else ''}; `python "
               f"bench/bench_peer.py --summarize{flags}` redraws this). Last written by `{command}`.")
    lines = ["# bench_peer: this system against its peers, over seeds (issue 27)", "", how, "",
             f"Pieces so far: {len(seeds[['seed', 'space', 'budget_min']].drop_duplicates())}; cpu share: "
             f"{', '.join(sorted(set(seeds['cpu_share'].astype(str))))}; load average (1 min) over the pieces' "
             f"windows: {seeds['load_avg'].min():.2f}-{seeds['load_avg'].max():.2f}.", "",
             "## Means per space and budget", "",
             "| space | budget (min) | method | seeds | best val micro-F1 | retrained test micro-F1 (sd) | "
             "first epoch (s) | trials | trial-epochs | CPU (s) | load avg |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in means.itertuples():
        lines.append(f"| {r.space} | {r.budget_min:g} | {r.method} | {r.seeds} | {r.best_val:.4f} | "
                     f"{r.test_micro_f1:.4f} ({r.test_sd:.3f}) | {r.first_epoch_s:.0f} | {r.trials:.1f} | "
                     f"{r.trial_epochs:.1f} | {r.cpu_s:.0f} | {r.load_avg:.2f} |")
    for title, table in (("retrained test micro-F1", pairs), ("best validation micro-F1", pairs_val)):
        lines += ["", f"## this_system minus each peer, paired by seed: {title}", "",
                  "| space | budget (min) | peer | pairs | mean difference | bootstrap 90% interval | wins / ties / "
                  "losses |", "|---|---|---|---|---|---|---|"]
        for r in table.itertuples():
            budget = r.budget_min if isinstance(r.budget_min, str) else f"{r.budget_min:g}"
            lines.append(f"| {r.space} | {budget} | {r.peer} | {r.pairs} | {r.mean_diff:+.4f} | "
                         f"[{r.ci90_low:+.4f}, {r.ci90_high:+.4f}] | {r.wins} / {r.ties} / {r.losses} |")
    lines += ["", "Per seed: `seeds.csv` (one row per method x seed x budget x space, with the load average of its "
              "window); `summary.csv`, `paired.csv`; `curves.csv` and `curves.png` (best so far against time, mean "
              "over seeds). How each figure is made: the docstring of bench/bench_peer.py.", ""]
    text = "\n".join(lines)
    (out / "README.md").write_text(text)
    return text


# ----------------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------------

def plan(args: argparse.Namespace, seeds: pd.DataFrame) -> list[tuple[int, str, float, tuple[str, ...]]]:
    """What is left to run, in order, one `run_piece` call each: (seed, space, budget, methods). Side by side, a
    piece not in seeds.csv with all of --methods; with --alone, each method whose row is missing, on its own, in
    the piece's launch order. 7-minute budget first."""
    held = {(str(m), int(s), str(sp), float(b)) for m, s, sp, b in seeds[["method", *PIECE]].itertuples(index=False)}
    done = done_pieces(seeds)
    runs = []
    for budget in map(float, args.budgets):
        for seed in range(args.seeds):
            for space in args.spaces:
                if args.alone:
                    runs += [(seed, space, budget, (m,)) for m in launch_order(args.methods, seed, space)
                             if (m, seed, space, budget) not in held]
                elif (seed, space, budget) not in done:
                    runs.append((seed, space, budget, tuple(args.methods)))
    return runs


def refuse(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    print(f"bench_peer.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def protocol(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Every piece not yet in seeds.csv (at most --pieces of them), 7-minute budget first."""
    import peer_methods

    missing = peer_methods.missing_requirements(args.methods)
    if missing:  # refused before any piece: a method that cannot start would leave an empty row
        others = " ".join(m for m in args.methods if m not in missing)
        refuse("; ".join(f"{method} needs its package: {install} (or leave it out: --methods {others})"
                         for method, install in missing.items()))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        write_condition(out, condition_of(args))
    except BenchError as err:
        refuse(str(err))
    seeds = read_seeds(out)
    todo = plan(args, seeds)
    command = "python bench/bench_peer.py " + shlex.join(argv)
    print(f"{len(todo)} pieces to run ({len(done_pieces(seeds))} in {out / 'seeds.csv'})", flush=True)
    for seed, space, budget, methods in todo[:args.pieces]:
        rows, curves = run_piece(args, seed, space, budget, methods)
        if args.alone:  # its place among the seed's methods, each run alone in turn
            rows["launch_order"] = launch_order(args.methods, seed, space).index(methods[0])
        append_csv(rows, out / "seeds.csv")
        append_csv(curves, out / "curves.csv")
        summarize(out, command, args.smoke)
    print(summarize(out, command, args.smoke))


def startup(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """--startup: launch.py to its first reported epoch, alone on the machine (bench/peer_startup.py)."""
    from peer_startup import measure

    tables = measure(args.startup, compare=tuple(args.compare_root))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/bench_peer.py " + shlex.join(argv)
    if not args.compare_root:
        tables["this"].to_csv(out / "startup.csv", index=False)
    else:
        pd.concat([t.assign(version=name) for name, t in tables.items()]).to_csv(out / "startup_ab.csv", index=False)
    print(f"[{command}]")
    for name, table in tables.items():
        print(f"{name}: first epoch median {table['first_epoch_s'].median():.2f} s "
              f"(min {table['first_epoch_s'].min():.2f}, max {table['first_epoch_s'].max():.2f}), Ray start "
              f"median {table['ray_start_s'].median():.2f} s, load average {table['load_avg'].min():.2f}-"
              f"{table['load_avg'].max():.2f}")


def ray_cost(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """--ray-cost: where this system's CPU share goes, per kind of process (bench/peer_raycost.py)."""
    from peer_raycost import measure

    variants = {"default": []}
    for spec in args.variant:
        name, _, extra = spec.partition("=")
        variants[name] = shlex.split(extra)
    cpus = (os.cpu_count() or 1) / len(METHODS)  # one method's share in a protocol piece
    table = measure(variants, args.ray_cost, args.ray_cost_window, cpus, CpuShares)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    table.assign(command="python bench/bench_peer.py " + shlex.join(argv)).to_csv(out / "ray_cost.csv", index=False)
    shown = table.drop(columns=["repeat", "window_s", "cap_cpus"]).groupby("variant").median(numeric_only=True)
    print(f"[python bench/bench_peer.py {shlex.join(argv)}] medians over {args.ray_cost} launches of "
          f"{args.ray_cost_window:g} s capped at {cpus:g} CPUs (CPU seconds):")
    print(shown.T.to_string())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from search.options import CPU_DEFAULTS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="toy sizes for CI (one piece); figures are noise")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    p.add_argument("--spaces", nargs="+", default=list(SPACES), help="search spaces")
    p.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS_MIN), help="wall-clock minutes per method")
    p.add_argument("--pieces", type=int, default=None, help="run at most this many pieces, then exit")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                   help="the methods side by side (default: all five)")
    p.add_argument("--records", type=int, default=CPU_DEFAULTS.n_records, help="synthetic records (launch.py's default)")
    p.add_argument("--epochs", type=int, default=CPU_DEFAULTS.max_epochs, help="epochs per trial (launch.py's default)")
    p.add_argument("--grace-period", type=int, default=CPU_DEFAULTS.grace_period, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None,
                   help="where the figures go (default bench/results/peer, or bench/out/peer-smoke with --smoke)")
    p.add_argument("--keep", action="store_true", help="keep each piece's work folder (run folders, studies, logs)")
    p.add_argument("--alone", action="store_true",
                   help="each method alone on the machine, one after another in an order that rotates with the seed "
                        "(the other equal condition; default --out bench/results/peer/alone)")
    p.add_argument("--common-draws", type=int, default=0, metavar="N",
                   help="every method but dehb runs the same N random configurations first (common random numbers; "
                        "this system as --warm-start rows, the Optuna peers enqueued)")
    p.add_argument("--summarize", action="store_true", help="only redraw the summary from seeds.csv and curves.csv")
    p.add_argument("--gather", type=Path, nargs="+", default=[], metavar="DIR",
                   help="with --summarize: first write --out's seeds.csv and curves.csv from these folders' pieces "
                        "(each method run alone with its own --out)")
    p.add_argument("--startup", type=int, nargs="?", const=5, default=None, metavar="REPEATS",
                   help="only time launch.py to its first reported epoch, REPEATS launches (startup.csv)")
    p.add_argument("--compare-root", type=Path, action="append", default=[],
                   help="with --startup: another checkout whose launch.py is timed in turn (startup_ab.csv); repeatable")
    p.add_argument("--ray-cost", type=int, default=None, metavar="REPEATS",
                   help="only measure where this system's capped CPU share goes, per process kind (ray_cost.csv)")
    p.add_argument("--ray-cost-window", type=float, default=120.0, help="with --ray-cost: seconds per launch")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=LAUNCH_OPTIONS",
                   help="with --ray-cost: another launch.py variant measured in turn (leading NAME=VALUE words are its "
                        "environment, e.g. RAY_<setting>=...); repeatable")
    # Internal: the worker processes a piece starts.
    p.add_argument("--space", default="gru", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=METHODS[1:], help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--storage", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    p.add_argument("--started", type=float, help=argparse.SUPPRESS)
    p.add_argument("--retrain", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.gather and not args.summarize:
        p.error("--gather only applies with --summarize")
    if args.common_draws < 0:
        p.error(f"--common-draws must be 0 or more, got {args.common_draws}")
    if args.smoke and not (args.worker or args.retrain):
        args.seeds, args.spaces, args.budgets, args.pieces = 1, ["gru"], [1.5], 1
        args.records, args.epochs, args.grace_period = 120, 2, 1
    if args.out is None:
        args.out = default_out(args.smoke, args.alone)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker or args.retrain:
        import peer_methods

        if args.retrain:
            peer_methods.retrain_worker(args)
        elif args.worker == "dehb":
            peer_methods.dehb_worker(args)
        elif args.worker == "one_epoch_topk":
            peer_methods.topk_worker(args)
        else:
            peer_methods.optuna_worker(args)
    elif args.startup is not None:
        startup(args, argv)
    elif args.ray_cost is not None:
        ray_cost(args, argv)
    elif args.summarize:
        if args.gather:
            try:
                gather(args.out, args.gather)
            except BenchError as err:
                refuse(str(err))
        print(summarize(args.out, "python bench/bench_peer.py " + shlex.join(argv), args.smoke))
    else:
        protocol(args, argv)


if __name__ == "__main__":
    main()
