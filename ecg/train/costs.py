"""What a model costs: parameters, multiply-accumulates and latency per record, peak memory of training.

Measured by the caller once per trial (the search does it with a trial's first reported epoch: a trial that
ASHA stops never runs code after its last report, and none of these figures change as the weights train).
"""
from __future__ import annotations

import resource
import sys
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecg.features.layout import input_width
from ecg.train.device import autocast

LATENCY_BATCHES = (1, 64)
LATENCY_REPEATS = 3


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
               bf16: bool = False, repeats: int = LATENCY_REPEATS) -> float:
    """Median wall time per record (ms) of a forward pass at `batch` records, after one warm-up pass."""
    was_training = model.training
    model.eval()
    x, age_sex = _inputs(n_leads, length, batch, device)
    times = []
    with torch.inference_mode(), autocast(device, bf16):
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            model(x, age_sex)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first pass warms caches and kernels up
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
    """params, macs and latency_ms_b1 / latency_ms_b64 (per record) of `model` on `device`."""
    device = torch.device(device)
    out: dict[str, float] = {"params": count_params(model),
                             "macs": macs_per_record(model, n_leads=n_leads, length=length, device=device)}
    for batch in LATENCY_BATCHES:
        out[f"latency_ms_b{batch}"] = latency_ms(model, n_leads=n_leads, length=length, batch=batch,
                                                 device=device, bf16=bf16)
    return out


class CostMeter:
    """Cost figures for a trial's epoch reports: the model's costs once (with the first epoch reported),
    the peak memory so far with every epoch."""

    def __init__(self, model: nn.Module, *, n_leads: int, length: int, device: torch.device | str,
                 bf16: bool = False) -> None:
        self.model, self.n_leads, self.length = model, n_leads, length
        self.device, self.bf16 = torch.device(device), bf16
        self.pending = True
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)  # a reused worker's earlier trials do not count

    def metrics(self) -> dict[str, float]:
        out = {"peak_mem_mb": peak_memory_mb(self.device)}
        if self.pending:
            out.update(model_costs(self.model, n_leads=self.n_leads, length=self.length, device=self.device,
                                   bf16=self.bf16))
            self.pending = False
        return out
