"""What a model costs: parameters, multiply-accumulates and latency per record, peak memory of training.

Measured by the caller once per trial (the search does it with a trial's first reported epoch: a trial that
ASHA stops never runs code after its last report, and none of these figures change as the weights train).
"""
from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecg.features.layout import input_width
from ecg.train.device import autocast

LATENCY_BATCHES = (1, 64)
LATENCY_REPEATS = 3


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def require_on(model: nn.Module, device: torch.device) -> None:
    """Raise ValueError unless every parameter and buffer of `model` is on `device`: the costs are measured on one
    device, the model's and its inputs' (a trial's: move the model there first), never across two."""
    elsewhere = {str(t.device) for t in (*model.parameters(), *model.buffers()) if not _same_device(t.device, device)}
    if elsewhere:
        raise ValueError(f"the model's weights are on {', '.join(sorted(elsewhere))} but its costs are measured on "
                         f"{device}: move the model to {device} first (model.to(device))")


def _same_device(a: torch.device, b: torch.device) -> bool:
    # torch.device("cuda") has no index; a CUDA tensor's device always has one (the current device's).
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _inputs(n_leads: int, length: int, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, n_leads, length, generator=generator).to(device)
    # The widest per-record input (age/sex and every feature): any model's head takes the columns it joins.
    return x, torch.zeros(batch, input_width(n_leads), device=device)


def macs_per_record(model: nn.Module, *, n_leads: int, length: int, device: torch.device) -> int:
    """Multiply-accumulates of one record's forward pass: FlopCounterMode counts a multiply-add as 2 FLOPs
    (matmul, convolution), so MACs = FLOPs / 2. Element-wise work (activations, norms) is not counted."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(*_inputs(n_leads, length, 1, device))
    model.train(was_training)
    return int(counter.get_total_flops() // 2)


def latency_ms(model: nn.Module, *, n_leads: int, length: int, batch: int, device: torch.device,
               bf16: bool = False, repeats: int = LATENCY_REPEATS, warm_up: bool = True) -> float:
    """Median wall time per record (ms) of `repeats` forward passes at `batch` records, after one warm-up pass
    (`warm_up`)."""
    was_training = model.training
    model.eval()
    x, age_sex = _inputs(n_leads, length, batch, device)
    times = []
    with torch.inference_mode(), autocast(device, bf16):
        for i in range(repeats + 1 if warm_up else repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            model(x, age_sex)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i or not warm_up:  # the first pass warms caches and kernels up
                times.append(time.perf_counter() - started)
    model.train(was_training)
    return 1000 * sorted(times)[len(times) // 2] / batch


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA's peak allocation on `device`, else this process's peak resident set (on
    CPU that includes the data and everything else the worker process ever held)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def model_costs(model: nn.Module, *, n_leads: int, length: int, device: torch.device | str,
                bf16: bool = False) -> dict[str, float]:
    """params, macs and latency_ms_b1 / latency_ms_b64 (per record) of `model` on `device`, where the model must
    already be (ValueError otherwise): its inputs are made there."""
    device = torch.device(device)
    require_on(model, device)
    out: dict[str, float] = {"params": count_params(model),
                             "macs": macs_per_record(model, n_leads=n_leads, length=length, device=device)}
    for i, batch in enumerate(LATENCY_BATCHES):
        # A trial pays for these before it trains, so the larger batch is timed once: on a CPU its passes cost
        # a good part of a small search's epoch, and the batch-1 passes already warmed the model up there. A GPU
        # still warms up at every new shape (kernel selection).
        later = i > 0
        out[f"latency_ms_b{batch}"] = latency_ms(model, n_leads=n_leads, length=length, batch=batch, device=device,
                                                 bf16=bf16, repeats=1 if later else LATENCY_REPEATS,
                                                 warm_up=not later or device.type == "cuda")
    return out


@dataclass(frozen=True)
class Budget:
    """Upper bounds on a model's cost (None: no bound): parameters, and latency per record at batch 1 (ms)."""

    max_params: int | None = None
    max_latency_ms: float | None = None

    def __bool__(self) -> bool:
        return self.max_params is not None or self.max_latency_ms is not None

    def violations(self, costs: dict[str, float]) -> dict[str, float]:
        """One value per bound, relative to it: > 0 over budget, <= 0 within (Optuna's constraint convention).
        Relative, so that a sampler that sums violations weighs parameters and milliseconds alike."""
        out = {}
        if self.max_params is not None:
            out["max_params"] = costs["params"] / self.max_params - 1.0
        if self.max_latency_ms is not None:
            out["max_latency_ms"] = costs["latency_ms_b1"] / self.max_latency_ms - 1.0
        return out

    def exceeded(self, costs: dict[str, float]) -> str | None:
        """Why `costs` are over budget ("params 1234567 > 100000"), or None when within it."""
        reasons = []
        if self.max_params is not None and costs["params"] > self.max_params:
            reasons.append(f"params {int(costs['params'])} > {self.max_params}")
        if self.max_latency_ms is not None and costs["latency_ms_b1"] > self.max_latency_ms:
            reasons.append(f"latency_ms {costs['latency_ms_b1']:.3g} > {self.max_latency_ms:g}")
        return "; ".join(reasons) or None


class CostMeter:
    """Cost figures for a trial's epoch reports: the model's costs, measured once and reported with every epoch
    (a multi-objective searcher reads them from the trial's last result), and the peak memory so far. The model
    must be on `device` when the costs are first asked for (`model_costs`)."""

    def __init__(self, model: nn.Module, *, n_leads: int, length: int, device: torch.device | str,
                 bf16: bool = False) -> None:
        self.model, self.n_leads, self.length = model, n_leads, length
        self.device, self.bf16 = torch.device(device), bf16
        self._costs: dict[str, float] | None = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)  # a reused worker's earlier trials do not count

    def costs(self) -> dict[str, float]:
        """params, macs, latency_ms_b1/_b64 of the model, measured on the first call."""
        if self._costs is None:
            self._costs = model_costs(self.model, n_leads=self.n_leads, length=self.length, device=self.device,
                                      bf16=self.bf16)
        return self._costs

    def metrics(self) -> dict[str, float]:
        return {"peak_mem_mb": peak_memory_mb(self.device), **self.costs()}
