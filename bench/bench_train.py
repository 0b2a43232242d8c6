"""How much of a model's raw training speed `fit` keeps.

For each model: samples/s of `ecg.train.fit` (device-resident int16 split, seeded permutation, slicing,
int16 -> mV, augmentation, class-weighted loss, optimiser and schedule steps, the validation pass and its
metrics every epoch) divided by samples/s of a bare loop (forward + backward + Adam step on one pre-made batch
of float tensors), same model, same batch size, measured alternately in one run. Target >= 0.90 on CPU.
The validation split is 1/7 of the training split (the 70/10 ratio of a search) and counts as overhead.
On CUDA it also reports fp32 against bf16 autocast.

    python bench/bench_train.py            # small ECGNet and GRU, 8 leads x 5000 samples
    python bench/bench_train.py --smoke    # seconds, for CI
    python bench/bench_train.py --device cuda
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ecg.data.dataset import HEFEI_LEADS, N_SAMPLES, UNITS_PER_MV, ECGDataset
from ecg.models import create_model
from ecg.train import TrainConfig, fit
from ecg.train.device import autocast, resolve_device

N_CLASSES = 34
MODELS: dict[str, tuple[str, dict]] = {
    "ecgnet-small": ("ecgnet", {"version": "v1", "width": 8, "width_1d": 32, "blocks_2d": 1, "blocks_1d": 3,
                                 "downsamples_1d": 3}),
    "gru": ("gru", {"version": "v1", "hidden": 32, "fc_hidden": 32}),
}


def random_dataset(n: int, length: int, seed: int) -> ECGDataset:
    """Records of the real shape and scale (int16, about 1 mV) with labels at the Hefei set's density."""
    rng = np.random.default_rng(seed)
    signals = (rng.standard_normal((n, len(HEFEI_LEADS), length), dtype=np.float32) * UNITS_PER_MV).astype(np.int16)
    labels = (rng.random((n, N_CLASSES)) < 0.04).astype(np.uint8)
    labels[np.arange(n), rng.integers(0, N_CLASSES, n)] = 1
    return ECGDataset(signals=signals, age=rng.uniform(20, 90, n), sex=rng.integers(0, 2, n).astype(np.float32),
                      labels=labels, class_names=[f"c{i}" for i in range(N_CLASSES)],
                      record_ids=[f"r{i}" for i in range(n)])


def build(name: str, length: int) -> torch.nn.Module:
    torch.manual_seed(0)
    family, options = MODELS[name]
    return create_model(family, n_leads=len(HEFEI_LEADS), n_classes=N_CLASSES, length=length, **options)


@dataclass
class Clocks:
    """Wall time and this process's CPU time. On a shared CPU, wall time also counts waiting for a core;
    CPU time (with one thread) counts only the work done, so it compares fairly under contention."""

    wall: float
    cpu: float

    @classmethod
    def now(cls, device: torch.device) -> "Clocks":
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return cls(time.perf_counter(), time.process_time())

    def __sub__(self, other: "Clocks") -> "Clocks":
        return Clocks(self.wall - other.wall, self.cpu - other.cpu)


def bare_rate(name: str, length: int, n_train: int, batch_size: int, device: torch.device, bf16: bool) -> Clocks:
    """samples/s of forward + backward + step over n_train samples of one pre-made batch."""
    model = build(name, length).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch_size, len(HEFEI_LEADS), length, device=device)
    age_sex = torch.rand(batch_size, 4, device=device)
    y = (torch.rand(batch_size, N_CLASSES, device=device) < 0.05).float()
    steps = max(1, n_train // batch_size)

    def step() -> None:
        with autocast(device, bf16):
            logits = model(x, age_sex)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # Warm up for as many steps as fit's untimed first epoch: the first steps after a model is built run
    # faster on CPU than the steady state (measured for the GRU: 341 samples/s at the first step, 273 at the fifth,
    # ~260 from the ninth on, even with the optimiser off), so timing the bare loop after one warm-up step compares
    # fit's steady state with the bare loop's head start.
    for _ in range(steps):
        step()
    started = Clocks.now(device)
    for _ in range(steps):
        step()
    spent = Clocks.now(device) - started
    samples = steps * batch_size
    return Clocks(samples / spent.wall, samples / spent.cpu)


def eval_rate(name: str, length: int, n_val: int, device: torch.device, bf16: bool) -> Clocks:
    """samples/s of the forward pass alone (inference mode), on pre-made tensors: what validation costs."""
    model = build(name, length).to(device).eval()
    x = torch.randn(n_val, len(HEFEI_LEADS), length, device=device)
    with torch.inference_mode(), autocast(device, bf16):
        model(x, None)
        started = Clocks.now(device)
        model(x, None)
        spent = Clocks.now(device) - started
    return Clocks(n_val / spent.wall, n_val / spent.cpu)


def fit_rate(name: str, train: ECGDataset, val: ECGDataset, batch_size: int, epochs: int, device: torch.device,
             bf16: bool) -> Clocks:
    """samples/s of fit over the epochs after the first (which pays one-off warm-up costs), clocked from the
    end of epoch 1 to the end of the last epoch, so everything fit does in between counts."""
    model = build(name, train.n_samples)
    config = TrainConfig(lr=1e-4, epochs=epochs, batch_size=batch_size, schedule="plateau", bf16=bf16)
    marks: list[Clocks] = []
    fit(model, train, val, config, device=device, on_epoch=lambda report: marks.append(Clocks.now(device)))
    spent = marks[-1] - marks[0]
    samples = len(train) * (len(marks) - 1)
    return Clocks(samples / spent.wall, samples / spent.cpu)


@dataclass
class Row:
    model: str
    precision: str
    fit: Clocks
    bare: Clocks
    val_share: float  # fraction of an ideal epoch spent on the validation forward pass (CPU time)

    def ratios(self, clock: str) -> tuple[float, float]:
        """fit/bare, and fit/(bare + validation forward): the second isolates the pipeline's own overhead."""
        ratio = getattr(self.fit, clock) / getattr(self.bare, clock)
        return ratio, ratio / (1 - self.val_share)


def measure(name: str, args: argparse.Namespace, device: torch.device, bf16: bool) -> Row:
    n_val = max(8, args.records // 7)
    train, val = random_dataset(args.records, args.length, 1), random_dataset(n_val, args.length, 2)
    fits, bares, evals = [], [], []
    for _ in range(args.repeats):  # alternate, so all see the same machine load
        bares.append(bare_rate(name, args.length, args.records, args.batch_size, device, bf16))
        evals.append(eval_rate(name, args.length, n_val, device, bf16))
        fits.append(fit_rate(name, train, val, args.batch_size, args.epochs, device, bf16))

    def median(values: list[Clocks]) -> Clocks:
        return Clocks(statistics.median(v.wall for v in values), statistics.median(v.cpu for v in values))

    bare, evaluation = median(bares), median(evals)
    train_s, val_s = args.records / bare.cpu, n_val / evaluation.cpu
    return Row(name, "bf16" if bf16 else "fp32", median(fits), bare, val_s / (train_s + val_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the bench runs, figures are noise")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--records", type=int, default=224, help="training records (validation gets 1/7 as many)")
    parser.add_argument("--length", type=int, default=N_SAMPLES)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="fit epochs; the first is warm-up and not timed")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: one search trial's share of a small CPU)")
    args = parser.parse_args()
    if args.smoke:
        args.records, args.length, args.batch_size, args.epochs, args.repeats = 32, 1000, 16, 2, 1
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, {args.records} train records of "
          f"{len(HEFEI_LEADS)} x {args.length}, batch {args.batch_size}, {args.epochs - 1} timed epochs, "
          f"median of {args.repeats}")
    print(f"{'model':14} {'precision':9} {'fit/s':>7} {'bare/s':>7} {'fit/bare':>8} | {'fit/cpu-s':>9} "
          f"{'bare/cpu-s':>10} {'fit/bare':>8} {'val share':>9} {'fit/(bare+val)':>14}")
    print(f"{'':17}{'wall clock':^35}| {'CPU time of this process':^56}")
    precisions = [False, True] if device.type == "cuda" else [False]
    for name in args.models.split(","):
        rows = [measure(name, args, device, bf16) for bf16 in precisions]
        for row in rows:
            wall, _ = row.ratios("wall")
            cpu, cpu_ideal = row.ratios("cpu")
            print(f"{row.model:14} {row.precision:9} {row.fit.wall:7.1f} {row.bare.wall:7.1f} {wall:8.3f} | "
                  f"{row.fit.cpu:9.1f} {row.bare.cpu:10.1f} {cpu:8.3f} {row.val_share:9.3f} {cpu_ideal:14.3f}",
                  flush=True)
        if len(rows) == 2:
            print(f"{name:14} bf16 speed-up over fp32 (wall): fit x{rows[1].fit.wall / rows[0].fit.wall:.2f}, "
                  f"bare x{rows[1].bare.wall / rows[0].bare.wall:.2f}")


if __name__ == "__main__":
    main()
