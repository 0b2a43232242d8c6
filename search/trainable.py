"""One Ray Tune trial: build the sampled model, train it with `ecg.train.fit`, report every epoch.

Each epoch is one `tune.report` (ASHA's time unit); a checkpoint goes with it only when the epoch is the
trial's best so far, and the run keeps only that one. On a retry Ray hands back the checkpoint and training
resumes from it. The data comes from the object store (`tune.with_parameters`), never from files, at every
input rate the space samples; the trial takes its `data/fs`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
import tempfile
import time
from typing import Any, Iterable, Iterator

import ray
import ray.tune
import torch

from ecg.train.costs import Budget, CostMeter
from ecg.train.device import bf16_enabled, is_out_of_memory
from ecg.train import EpochReport, NonFiniteLossError, TrialConfig, fit, load_checkpoint, save_checkpoint
from search.data import TrialData
from search.progress import epoch_line, trial_label
from ecg.selection import best_so_far, metric_mode
from search.trial_failures import FATAL_FILE, TrialFailed, TrialFolder, faults_injected, is_disk_full, trial_number


# The result key of a trial rejected before training (its one report): why its model is over budget.
OVER_BUDGET = "over_budget"


class RunningBest:
    """The best value of `metric` ("max" or "min" mode) over the epochs seen so far; NaN epochs are skipped."""

    def __init__(self, metric: str, mode: str, history: Iterable[dict[str, float]] = ()) -> None:
        self.metric, self.sign = metric, 1.0 if mode == "max" else -1.0
        self.value = math.nan
        self.epoch = 0  # the last epoch seen
        for metrics in history:
            self.update(metrics)

    def update(self, metrics: dict[str, float]) -> float:
        """Take one epoch's metrics into account; the best value so far."""
        self.epoch = int(metrics.get("epoch", self.epoch + 1))
        value = float(metrics.get(self.metric, math.nan))
        if not math.isnan(value) and (math.isnan(self.value) or self.sign * value > self.sign * self.value):
            self.value = value
        return self.value


def trial_device(gpus: float, gpu_ids: str, cuda_available: bool) -> str:
    """The device a trial trains on: "cuda" when it was given a GPU share and CUDA works in this process, else
    "cpu".

    A trial can be given GPU ids with no CUDA device behind them: a cluster that declares logical GPUs
    (`ray start --num-gpus 2` on a CPU machine, as the GPU packing tests do), or a node whose torch is the CPU
    build. It then trains on the CPU rather than crash, says so in its worker log (the driver's console shows
    it with `-v`), and trials.csv records the `device` it trained on.
    """
    if gpus > 0 and cuda_available:
        return "cuda"
    if gpus > 0:
        print(f"trial given GPU share {gpus:g} (GPU ids {gpu_ids or 'none'}) but this process sees no CUDA device: "
              f"training on the CPU", file=sys.stderr, flush=True)
    return "cpu"


def train_trial(config: dict[str, Any], data: TrialData, budget: Budget | None = None) -> None:
    """The Ray Tune function trainable (see the module docstring). Each epoch also reports the trial's best
    selection metric so far (`best_so_far(optim.metric)`), which ASHA and the sampler compare; the same metric
    picks the epoch `fit` keeps and checkpoints. A model over `budget` (counted on the built model, its latency
    timed on a few forward passes) is not trained: one report with `over_budget` (the reason), NaN scores and
    its costs, and the trial ends."""
    entered = time.time()
    # Ray logs "Checkpoint successfully created at ..." (INFO) on the worker's STDERR with every checkpoint, so the
    # dashboard's STDERR tab of a trial actor was a line per epoch; it is kept for warnings and errors.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    context = ray.tune.get_context()
    storage = context.get_storage()
    folder = TrialFolder(storage.storage_filesystem, storage.trial_fs_path)
    fatal = folder.read(FATAL_FILE)
    if fatal is not None:
        # A non-finite loss or an OOM happens again on retry: fail at once instead of training again.
        raise TrialFailed(fatal["reason"])

    resources = context.get_trial_resources()
    cpus = max(1, int(resources.required_resources.get("CPU", 1)))
    gpus = resources.required_resources.get("GPU", 0)
    torch.set_num_threads(cpus)
    gpu_ids = ",".join(str(i) for i in ray.get_gpu_ids())  # Ray's ids for this trial; CUDA_VISIBLE_DEVICES too
    device = trial_device(gpus, gpu_ids, torch.cuda.is_available())

    trial = TrialConfig.from_nested(config)
    data = data.at_rate(trial.fs)
    optim = dataclasses.replace(trial.optim, threads=cpus)  # the CPU threads its resources allow
    # Seed before building: the initial weights are then a function of the config, so the same config gives
    # the same trial in any process (and a winner retrained with ecg.train reproduces its trial).
    torch.manual_seed(optim.seed)
    # On the trial's device before its costs are measured: they are measured there, where it will train.
    model = trial.build_model(n_leads=data.train.n_leads, n_classes=data.train.n_classes, length=data.length).to(device)
    resume = None
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            resume = load_checkpoint(directory)
    metric = optim.metric
    running = RunningBest(metric, metric_mode(metric), resume["meta"]["history"] if resume is not None else [])

    setup_s: float | None = None  # reported once, with this process's first epoch
    node_id = ray.get_runtime_context().get_node_id()
    trial_id = context.get_trial_id()
    number = trial_number(storage.trial_dir_name, trial_id)
    label = trial_label(trial_id, number)
    injector = None
    if faults_injected():  # the test hook (search.faults), imported only when it is switched on
        from search.faults import FaultInjector, configured_faults

        injector = FaultInjector(configured_faults(), number, folder)
    costs = CostMeter(model, n_leads=data.train.n_leads, length=data.length, device=device,
                      bf16=bf16_enabled(torch.device(device), optim.bf16))
    over = budget.exceeded(costs.costs()) if budget else None  # None or an empty Budget: no bound
    if over is not None:
        print(f"{label}: over budget ({over}): not trained", flush=True)
        ray.tune.report({OVER_BUDGET: over, "epoch": 0, metric: math.nan, best_so_far(metric): math.nan,
                         "node_id": node_id, "gpu_ids": gpu_ids, "device": device, **costs.metrics()})
        return

    def report(epoch: EpochReport) -> None:
        if injector is not None:
            injector.at_epoch_end(epoch.epoch)
        metrics = {k: float(v) for k, v in epoch.metrics.items()}
        metrics["epoch"] = epoch.epoch
        metrics[best_so_far(metric)] = running.update(metrics)
        nonlocal setup_s
        if setup_s is not None:
            metrics["setup_s"] = setup_s
            setup_s = None
        metrics["node_id"] = node_id  # which machine ran the epoch (epochs.csv; the two-node test reads it)
        # Where it ran: the GPU ids Ray gave the trial and the device it trained on (trials.csv; the GPU
        # packing tests read them).
        metrics["gpu_ids"], metrics["device"] = gpu_ids, device
        # The input it trained on: its data/fs and the samples per record there (trials.csv input_fs/length).
        metrics["input_fs"], metrics["input_length"] = data.fs, data.length
        metrics.update(costs.metrics())  # params, macs, latency once; peak memory every epoch
        # One line per epoch in this worker's log: the Ray dashboard's log of the trial actor shows it live.
        print(epoch_line(label, epoch.epoch, optim.epochs, metrics, metric, metrics[best_so_far(metric)]),
              flush=True)
        if epoch.is_best:
            with tempfile.TemporaryDirectory(prefix="ecg-ckpt-") as directory:
                save_checkpoint(epoch.state(), directory)
                ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(directory))
        else:
            ray.tune.report(metrics)

    # Trial start-up: entering the trainable to the start of training (checkpoint, model build, fault marker).
    setup_s = time.time() - entered
    start = f"from its checkpoint after epoch {resume['meta']['epoch']}" if resume is not None else "from epoch 1"
    try:
        with _start_and_end_lines(label, f"{trial.family} at {data.fs} Hz, {optim.epochs} epochs, {start}, on "
                                  f"{device} (folder {storage.trial_dir_name})", running, optim.epochs):
            fit(model, data.train, data.val, optim, on_epoch=report, device=device, resume=resume)
    except NonFiniteLossError as err:
        reason = f"non-finite loss: {err}"
        folder.write(FATAL_FILE, {"reason": reason})
        raise TrialFailed(reason) from err
    except OSError as err:
        if not is_disk_full(err):
            raise
        # A retry would meet the same full disk; the marker itself may not fit, so the retries may still run.
        reason = f"disk full: {err}"
        with contextlib.suppress(OSError):
            folder.write(FATAL_FILE, {"reason": reason})
        raise TrialFailed(reason) from err
    except RuntimeError as err:  # torch.OutOfMemoryError, or cuDNN/cuBLAS failing to allocate (is_out_of_memory)
        if not is_out_of_memory(err):
            raise
        reason = (f"out of memory at batch size {optim.batch_size}: use a smaller optim/batch_size or give each "
                  f"trial a larger GPU share (--gpus-per-trial, now {gpus:g}) ({str(err).splitlines()[0]})")
        folder.write(FATAL_FILE, {"reason": reason})
        raise TrialFailed(reason) from err


@contextlib.contextmanager
def _start_and_end_lines(label: str, what: str, running: RunningBest, epochs: int) -> Iterator[None]:
    """A line in the worker's log when the trial starts and one when it ends (how, after which epoch, its best
    score): with `reuse_actors` one Ray actor runs trial after trial, and its STDOUT in the dashboard tells them
    apart."""
    print(f"{label} started: {what}", flush=True)
    ended = "ended"
    try:
        yield
    except SystemExit:  # how Ray Tune ends a trial at an epoch's report: its last epoch, ASHA, the search's end
        ended = "ended" if running.epoch >= epochs else "stopped by Ray Tune (ASHA, or the search's end)"
        raise
    except BaseException as err:
        ended = f"failed ({type(err).__name__}; the traceback is on STDERR)"
        raise
    finally:
        best = "-" if math.isnan(running.value) else f"{running.value:.4f}"
        print(f"{label} {ended} after epoch {running.epoch}/{epochs}: best {running.metric} {best}", flush=True)
