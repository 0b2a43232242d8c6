"""Input rate against cost and accuracy: epoch time and best validation micro-F1 per `data/fs`, two families.

The synthetic set is generated at 500 Hz x 5,000 samples and resampled once per rate (`ecg.data.rates`, as a
search does); each family keeps one configuration, defined at 500 Hz and brought to every rate by the search's
own rule (`spaces.rate.at_rate`: the segmentation keeps its steps, the stem kernel its time span), then trains
for the same epochs on the same split with the same seed. Figures: median epoch time (wall and this process's
CPU time, one thread, so a shared machine compares fairly), best validation micro-F1, parameters, and the
one-off resampling time of the whole set. A CSV and a plot go to bench/results/rate/.

    python bench/bench_rate.py            # 600 records, 100/250/500 Hz, ECGNet and GRU, 5 epochs, 1 seed
    python bench/bench_rate.py --smoke    # seconds, for CI
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from ecg.data.rates import resample_dataset
from ecg.data.source import DataSpec, load, split
from ecg.models import create_model
from ecg.train import TrainConfig, fit
from search.data import TrialData
from spaces import SpaceContext
from ecg.flat_config import FS_KEY
from spaces.rate import at_rate

OUT = Path(__file__).resolve().parent / "results" / "rate"
REFERENCE_FS, LENGTH = 500, 5000
# One configuration per family, as a CPU search would draw it at 500 Hz (the study's rate).
FAMILIES: dict[str, dict] = {
    "ecgnet": {"model/version": "v1", "model/width": 8, "model/width_1d": 32, "model/blocks_2d": 1,
               "model/blocks_1d": 3, "model/stem_kernel": 49, "model/kernel": 5},
    "gru": {"model/version": "v2.1", "model/segmentation": "500x10", "model/hidden": 32, "model/fc_hidden": 32,
            "model/shared": True},
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=600)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--rates", default="100,250,500")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--smoke", action="store_true", help="80 records, 1 epoch, 1 seed, 100 and 250 Hz: seconds")
    args = p.parse_args()
    if args.smoke:
        args.records, args.epochs, args.seeds, args.rates = 80, 1, 1, "100,250"
        if args.out == OUT:
            args.out = Path("/tmp") / "bench-rate-smoke"
    return args


def train_once(family: str, flat: dict, data: TrialData, epochs: int, seed: int) -> dict:
    """Train one configuration at `data`'s rate; its epoch times and best validation metrics."""
    options = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith("model/")}
    torch.manual_seed(seed)
    model = create_model(family, n_leads=data.train.n_leads, n_classes=data.train.n_classes,
                         length=data.train.n_samples, **options)
    config = TrainConfig(lr=3e-3, batch_size=32, epochs=epochs, schedule="cosine", seed=seed, threads=1)
    cpu_times: list[float] = []
    started = [time.process_time()]

    def on_epoch(report) -> None:
        cpu_times.append(time.process_time() - started[0])
        started[0] = time.process_time()

    result = fit(model, data.train, data.val, config, on_epoch=on_epoch)
    return {"params": sum(p.numel() for p in model.parameters()), "options": options,
            "epoch_s": statistics.median(h["epoch_time_s"] for h in result.history),
            "epoch_cpu_s": statistics.median(cpu_times),
            "best_val_micro_f1": max(h["val_micro_f1"] for h in result.history),
            "best_val_macro_f1": max(h["val_macro_f1"] for h in result.history)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    rates = sorted(int(r) for r in args.rates.split(","))
    families = args.families.split(",")
    dataset = load(DataSpec(n_records=args.records, seed=0, fs=REFERENCE_FS, length=LENGTH))
    splits = split(dataset, seed=0)
    ctx = SpaceContext(gpu=True, length=LENGTH, fs=REFERENCE_FS)
    rows = []
    for fs in rates:
        t0 = time.perf_counter()
        at_fs = TrialData(train=resample_dataset(splits.train, fs, use_cache=False),
                          val=resample_dataset(splits.val, fs, use_cache=False))
        resample_s = time.perf_counter() - t0
        print(f"{fs} Hz: train+val resampled in {resample_s:.2f} s ({at_fs.train.n_samples} samples per record)",
              flush=True)
        for family in families:
            flat = at_rate({FS_KEY: fs, **FAMILIES[family]}, ctx)
            for seed in range(args.seeds):
                row = train_once(family, flat, at_fs, args.epochs, seed)
                rows.append({"family": family, "fs": fs, "seed": seed, "samples": at_fs.train.n_samples,
                             "resample_s": round(resample_s, 3), **{k: v for k, v in row.items() if k != "options"},
                             "options": " ".join(f"{k}={v}" for k, v in row["options"].items()
                                                 if k in ("stem_kernel", "segmentation"))})
                print(f"  {family} seed {seed}: epoch {row['epoch_s']:.2f} s wall / {row['epoch_cpu_s']:.2f} s CPU, "
                      f"best val micro-F1 {row['best_val_micro_f1']:.4f}, {row['params']:,} params "
                      f"({rows[-1]['options']})", flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["family", "fs"]).agg(
        samples=("samples", "first"), params=("params", "first"), epoch_s=("epoch_s", "median"),
        epoch_cpu_s=("epoch_cpu_s", "median"), best_val_micro_f1=("best_val_micro_f1", "mean"),
        best_val_micro_f1_min=("best_val_micro_f1", "min"), best_val_micro_f1_max=("best_val_micro_f1", "max"),
        best_val_macro_f1=("best_val_macro_f1", "mean")).reset_index()
    print(f"\nper family and rate ({args.records} records, {args.epochs} epochs, {args.seeds} seed(s); "
          "F1 the mean over seeds):")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "rate_runs.csv", index=False)
    summary.to_csv(args.out / "rate.csv", index=False)
    plot(summary, args.out / "rate.png")
    print(f"written: {args.out / 'rate.csv'}, {args.out / 'rate_runs.csv'}, {args.out / 'rate.png'}")


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for family, group in summary.groupby("family"):
        ax.plot(group["epoch_cpu_s"], group["best_val_micro_f1"], marker="o", label=family)
        for _, row in group.iterrows():
            ax.annotate(f"{int(row['fs'])} Hz", (row["epoch_cpu_s"], row["best_val_micro_f1"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("median epoch CPU time (s, one thread)")
    ax.set_ylabel("best validation micro-F1")
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
