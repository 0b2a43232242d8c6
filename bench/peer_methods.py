"""The peers of bench_peer.py: each method's worker processes, as a strong engineer would write them.

Every method trains the same configs the same way: `spaces.build_space(space, ...)` draws a trial's flat config
(the very function this system's OptunaSearch calls), `train` builds it and runs `ecg.train.fit` on one CPU
thread, on the run's split at the trial's input rate, and logs every epoch (wall time, trial, epoch, validation
micro-F1, the epoch's own seconds) to the worker's events file, and every trial's config to its configs file,
as they happen. A worker stops itself at the first epoch that ends past the deadline (what it logged stays).

  optuna_hyperband  Optuna's TPESampler at its defaults (Optuna 5) + HyperbandPruner(min_resource=1,
                    max_resource=epochs, reduction_factor=3): two processes on one RDB study (SQLite), each
                    `study.optimize(objective)`, the objective reporting each epoch's value (`trial.report`) and
                    raising TrialPruned when `trial.should_prune()`, as Optuna's PyTorch example does; it
                    returns the trial's best epoch (the model every method keeps);
  random            Optuna's RandomSampler, no pruning: every trial trained to the end, two processes;
  dehb              the `dehb` package (DEHB, Awad et al. 2021) through its ask/tell interface: fidelity = epochs
                    (min 1, max `epochs`, eta 3), each job trained from scratch for its fidelity, fitness =
                    -best validation micro-F1, cost = seconds; one process runs DEHB and keeps two jobs in
                    flight in a pool of two worker processes. Our spaces are define-by-run (conditional, and
                    `all` nests seven families), so DEHB searches the unit cube [0, 1]^d with one dimension per
                    parameter name the space can draw, decoded as ConfigSpace decodes its own vectors
                    (categorical: the floor(u * k)-th choice; float/int: low + u * (high - low), on a log scale
                    when the space says log); a dimension whose parameter the drawn branch does not use is
                    inactive, as in ConfigSpace's conditional spaces;
  one_epoch_topk    every sampled config (RandomSampler) trained one epoch during the first half of the budget;
                    then the configs ranked by that epoch's validation micro-F1 go on to `epochs` epochs from
                    their epoch-1 checkpoint, best first, shared by the two processes, until the budget ends
                    (arXiv 2307.15422's baseline, with K = as many as the second half finishes).

With `bench_peer.py --common-draws N`, every method but dehb runs the same N configurations first (common random
numbers: the methods are compared, not their first draws): `common_draws` samples the space at random with a
seed of the piece, the Optuna peers' studies get them enqueued, and this system gets them as launch.py
`--warm-start` rows. DEHB is not given them: its first population is drawn in its own unit cube, and mapping a
configuration into that cube is not written.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

METRIC = "val_micro_f1"
STUDY = "peer"
PEERS = ("optuna_hyperband", "random", "dehb", "one_epoch_topk")


# What a peer needs beyond the project's own dependencies, and how to install it. `dehb` pins numpy<2, which this
# project cannot take; its ask/tell loop runs on numpy 2 (checked), so it installs without its pins.
REQUIREMENTS = {"dehb": ("dehb", "pip install ConfigSpace loguru dask distributed more-itertools && "
                                 "pip install --no-deps dehb==0.1.2")}


def missing_requirements(methods: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The methods among `methods` whose package is not installed, each with the command that installs it."""
    import importlib.util

    return {method: install for method, (module, install) in REQUIREMENTS.items()
            if method in methods and importlib.util.find_spec(module) is None}


class Deadline(Exception):
    """The budget is spent: the worker stops mid-trial (what it logged so far stays)."""


class StopAfterEpoch(Exception):
    """one_epoch_topk's first phase: the trial has had its epoch."""


@dataclass
class Context:
    """What a worker process needs: the run's split (every input rate), the space bound to it, the deadline."""

    split: Any
    space: Any
    epochs: int
    deadline: float
    work: Path
    name: str  # this worker's file prefix: "<method>-<index>"

    def log_epoch(self, trial: str, epoch: int, value: float, epoch_time_s: float) -> None:
        with open(self.work / f"{self.name}.events.csv", "a") as out:
            out.write(f"{time.time():.3f},{trial},{epoch},{value:.6f},{epoch_time_s:.3f}\n")

    def log_config(self, trial: str, config: dict[str, Any]) -> None:
        with open(self.work / f"{self.name}.configs.jsonl", "a") as out:
            out.write(json.dumps({"trial": trial, "config": config, "started": time.time()}, default=str) + "\n")


def load_context(args: argparse.Namespace, name: str) -> Context:
    """The split the parent wrote (split.csv) at every rate the space samples, and the space over it."""
    from bench_peer import load_split

    split = load_split(args, Path(args.work) / "split.csv")
    return Context(split=split, space=space_over(args, split), epochs=args.epochs, deadline=args.deadline,
                   work=Path(args.work), name=name)


def space_over(args: argparse.Namespace, split: Any) -> Any:
    """The piece's space (--space) over `split`: what launch.py builds for the same data, seed and epochs."""
    from spaces import SpaceContext, build_space

    return build_space(args.space, SpaceContext(gpu=False, length=split.train.n_samples, max_epochs=args.epochs,
                                                seed=args.seed, metric=METRIC, fs=split.fs))


DRAWS_SEED = 1_000_003  # the common draws' stream: (seed + 1) * this, away from every method's own sampler seeds


def common_draws(space: Callable[[Any], dict[str, Any]], seed: int,
                 n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The `n` configurations every method runs first: `space` sampled at random (Optuna's RandomSampler, seeded
    from `seed`), each as its study parameters (for `enqueue_trial`) and its flat config (a warm-start row)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=(seed + 1) * DRAWS_SEED)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    draws = []
    for _ in range(n):
        trial = study.ask()
        flat = space(trial)
        study.tell(trial, 0.0)
        draws.append((dict(trial.params), flat))
    return draws


def train(ctx: Context, trial: str, flat: dict[str, Any], *, epochs: int | None = None,
          on_epoch: Callable[[Any], None] | None = None, resume: Any = None) -> float:
    """Train config `flat` (up to `epochs`, default the config's own), logging every epoch; the best validation
    micro-F1 reached. Raises Deadline at the first epoch that ends past the deadline."""
    import torch

    from ecg.models import create_model
    from ecg.train import TrialConfig, fit

    config = TrialConfig.from_flat(flat)
    config.optim.threads = 1
    if epochs is not None:
        config.optim.epochs = epochs
    torch.manual_seed(config.optim.seed)
    data = ctx.split.at_rate(config.fs)  # the trial's input rate, as a search trial takes it
    model = create_model(config.family, n_leads=data.train.n_leads, n_classes=data.train.n_classes,
                         length=data.train.n_samples, **config.model)
    best = [-math.inf]

    def report(epoch: Any) -> None:
        value = float(epoch.metrics[METRIC])
        if not math.isnan(value):
            best[0] = max(best[0], value)
        ctx.log_epoch(trial, epoch.epoch, value, float(epoch.metrics["epoch_time_s"]))
        if time.time() > ctx.deadline:
            raise Deadline()
        if on_epoch is not None:
            on_epoch(epoch)

    fit(model, data.train, data.val, config.optim, on_epoch=report, device="cpu", resume=resume)
    return best[0]


# ----------------------------------------------------------------------------------------------------------
# optuna_hyperband and random: Optuna's own loop
# ----------------------------------------------------------------------------------------------------------

def optuna_worker(args: argparse.Namespace) -> None:
    """One of the two `study.optimize` processes of optuna_hyperband or random."""
    import optuna

    ctx = load_context(args, f"{args.worker}-{args.worker_index}")
    seed = args.seed * 100 + args.worker_index  # each process its own draws, both a function of the seed

    def objective(trial: optuna.Trial) -> float:
        flat = ctx.space(trial)  # what OptunaSearch calls in this system
        key = str(trial.number)
        ctx.log_config(key, flat)

        def prune(epoch: Any) -> None:
            trial.report(float(epoch.metrics[METRIC]), epoch.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return train(ctx, key, flat, on_epoch=prune if args.worker == "optuna_hyperband" else None)

    if args.worker == "optuna_hyperband":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
        pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=args.epochs, reduction_factor=3)
    else:
        sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=args.storage, sampler=sampler, pruner=pruner)
    try:
        study.optimize(objective, timeout=max(1.0, args.deadline - time.time()), catch=())
    except Deadline:
        pass


# ----------------------------------------------------------------------------------------------------------
# one_epoch_topk
# ----------------------------------------------------------------------------------------------------------

def topk_worker(args: argparse.Namespace) -> None:
    """One of one_epoch_topk's two processes (see the module docstring)."""
    import optuna

    from ecg.train import load_checkpoint, save_checkpoint

    ctx = load_context(args, f"one_epoch_topk-{args.worker_index}")
    checkpoints = ctx.work / "topk_checkpoints"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=args.storage,
                              sampler=optuna.samplers.RandomSampler(seed=args.seed * 100 + args.worker_index))
    screen_until = args.started + (args.deadline - args.started) / 2
    try:
        screened = 0
        while screened == 0 or time.time() < screen_until:  # at least one config each, however slow the start
            screened += 1
            trial = study.ask()
            flat = ctx.space(trial)
            key = str(trial.number)
            ctx.log_config(key, flat)

            def keep(epoch: Any, key: str = key) -> None:
                save_checkpoint(epoch.state(), checkpoints / key)
                raise StopAfterEpoch()

            value = math.nan
            try:
                train(ctx, key, flat, on_epoch=keep)
            except StopAfterEpoch:
                value = _logged_value(ctx, key, 1)
            study.tell(trial, value if not math.isnan(value) else None,
                       state=None if not math.isnan(value) else optuna.trial.TrialState.FAIL)
        # Both processes finish their last screening epoch before the ranking is read.
        (ctx.work / f"topk-screened-{args.worker_index}").touch()
        while len(list(ctx.work.glob("topk-screened-*"))) < 2 and time.time() < args.deadline:
            time.sleep(0.2)
        ranked = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
                        key=lambda t: (-t.value, t.number))
        configs = _configs(ctx.work, "one_epoch_topk")
        for trial in ranked[args.worker_index::2]:  # best first, alternating between the two processes
            key = str(trial.number)
            if (checkpoints / key).exists():
                train(ctx, key, configs[key], resume=load_checkpoint(checkpoints / key))
    except Deadline:
        pass


def _logged_value(ctx: Context, trial: str, epoch: int) -> float:
    for line in (ctx.work / f"{ctx.name}.events.csv").read_text().splitlines()[::-1]:
        _, key, at, value, _ = line.split(",")
        if key == trial and int(at) == epoch:
            return float(value)
    return math.nan


def _configs(work: Path, method: str) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(work.glob(f"{method}-*.configs.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            out[str(entry["trial"])] = entry["config"]
    return out


# ----------------------------------------------------------------------------------------------------------
# dehb
# ----------------------------------------------------------------------------------------------------------

class UnitCubeTrial:
    """An Optuna-trial stand-in that answers each `suggest_*` from a point of the unit cube: the coordinate of
    the parameter's name, decoded as ConfigSpace decodes a vector (see the module docstring)."""

    def __init__(self, point: dict[str, float]) -> None:
        self.point = point
        self.used: list[str] = []

    def _u(self, name: str) -> float:
        self.used.append(name)
        return min(max(float(self.point.get(name, 0.5)), 0.0), 1.0)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        choices = list(choices)
        return choices[min(int(self._u(name) * len(choices)), len(choices) - 1)]

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        u = self._u(name)
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if log else low + u * (high - low)
        if step:
            value = low + round((value - low) / step) * step
        return float(min(max(value, low), high))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        if log:
            return int(round(self.suggest_float(name, low, high, log=True)))
        grid = (high - low) // step + 1  # the values low, low + step, ..., each an equal share of [0, 1]
        return low + min(int(self._u(name) * grid), grid - 1) * step


def cube_dimensions(space: Any, draws: int = 300, seed: int = 0) -> list[str]:
    """Every parameter name `space` can draw, sorted: random points of the cube reach every branch (each
    categorical branch has probability >= 1/8 per draw in these spaces, as spaces.describe relies on)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names: set[str] = set()
    for _ in range(draws):
        trial = UnitCubeTrial(_RandomPoint(rng))
        space(trial)
        names.update(trial.used)
    return sorted(names)


class _RandomPoint(dict):
    """A point whose every coordinate is drawn on first access."""

    def __init__(self, rng: Any) -> None:
        super().__init__()
        self.rng = rng

    def get(self, key: str, default: Any = None) -> float:
        if key not in self:
            self[key] = float(self.rng.random())
        return self[key]


def dehb_job(args: argparse.Namespace, job_id: int, point: dict[str, float], fidelity: float) -> dict[str, Any]:
    """One DEHB job in a pool process: decode the point, train it for round(fidelity) epochs from scratch."""
    ctx = _pool_context(args)
    flat = ctx.space(UnitCubeTrial(point))
    key = str(job_id)
    ctx.log_config(key, flat)
    started = time.time()
    try:
        best = train(ctx, key, flat, epochs=max(1, int(round(fidelity))))
    except Deadline:
        best = math.nan
    return {"fitness": -best if not math.isnan(best) and best > -math.inf else 0.0, "cost": time.time() - started}


_POOL_CONTEXT: Context | None = None


def _pool_context(args: argparse.Namespace) -> Context:
    global _POOL_CONTEXT
    if _POOL_CONTEXT is None:
        _POOL_CONTEXT = load_context(args, f"dehb-{os.getpid()}")
    return _POOL_CONTEXT


def dehb_worker(args: argparse.Namespace) -> None:
    """DEHB's ask/tell loop with two jobs in flight (a pool of two processes) until the deadline."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import ConfigSpace
    from dehb import DEHB

    ctx = load_context(args, "dehb-driver")
    dims = cube_dimensions(ctx.space, seed=args.seed)
    cs = ConfigSpace.ConfigurationSpace({name: (0.0, 1.0) for name in dims}, seed=args.seed)
    optimizer = DEHB(cs=cs, dimensions=len(dims), min_fidelity=1, max_fidelity=args.epochs, eta=3, n_workers=1,
                     output_path=str(ctx.work / "dehb_out"), seed=args.seed, log_level="WARNING")
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    running: dict[Any, dict[str, Any]] = {}
    job_id = 0
    try:
        while time.time() < args.deadline:
            while len(running) < 2:
                job = optimizer.ask()
                point = {name: float(job["config"][name]) for name in dims}
                running[pool.submit(dehb_job, args, job_id, point, float(job["fidelity"]))] = job
                job_id += 1
            done, _ = wait(list(running), timeout=max(0.1, args.deadline - time.time()), return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                optimizer.tell(job, future.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()


# ----------------------------------------------------------------------------------------------------------
# The winners' retraining
# ----------------------------------------------------------------------------------------------------------

def retrain_worker(args: argparse.Namespace) -> None:
    """Retrain one winner's config for --epochs epochs on the shared split; write its val and test micro-F1
    (the epoch chosen on validation, labels at 0.5)."""
    import torch

    from bench_peer import load_split
    from ecg.metrics import binarize, micro_f1
    from ecg.models import create_model
    from ecg.train import TrialConfig, fit, predict

    split = load_split(args, Path(args.work) / "split.csv")
    config = TrialConfig.from_flat(json.loads(Path(args.config).read_text()))
    config.optim.epochs, config.optim.threads = args.epochs, 1
    torch.manual_seed(config.optim.seed)
    split = split.at_rate(config.fs)
    model = create_model(config.family, n_leads=split.train.n_leads, n_classes=split.train.n_classes,
                         length=split.train.n_samples, **config.model)
    started = time.perf_counter()
    result = fit(model, split.train, split.val, config.optim, device="cpu")  # the model keeps the best epoch
    probs = predict(model, split.test, device="cpu")
    out = {"val_micro_f1": float(result.best_metrics[METRIC]), "best_epoch": result.best_epoch,
           "test_micro_f1": float(micro_f1(split.test.labels.astype(bool), binarize(probs, 0.5))),
           "retrain_s": round(time.perf_counter() - started, 1)}
    Path(args.result).write_text(json.dumps(out) + "\n")
