#!/usr/bin/env python
"""Do the hand-made features help a CNN? Micro/macro-F1 on test with and without them, per class group.

    python bench/bench_features.py                  # ResNet-14, 400 synthetic records at 250 Hz, 4 epochs
    python bench/bench_features.py --arms none,stats,clinical,both   # every feature set (twice as long)
    python bench/bench_features.py --smoke          # 120 records, 1 epoch, none and both, into a temporary folder

One fixed ResNet configuration (age and sex joined in every arm, so only the features differ) is trained with
`ecg.train.fit` on the same split and seed for each `model/features` choice; the epoch with the best
validation micro-F1 is kept and scored once on test at threshold 0.5. Groups are
`ecg.synthetic.diagnoses.CLASS_GROUPS` (rhythm, conduction, morphology); a group's macro-F1 averages the
classes that have a positive test record. Writes features.csv into --out and prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg.data.source import split  # noqa: E402
from ecg.features import attach_features  # noqa: E402
from ecg.features.layout import FEATURE_SETS  # noqa: E402
from ecg.metrics import evaluate  # noqa: E402
from ecg.models import create_model  # noqa: E402
from ecg.synthetic import load_synthetic  # noqa: E402
from ecg.synthetic.diagnoses import CLASS_GROUPS  # noqa: E402
from ecg.train import TrainConfig, fit, predict  # noqa: E402

MODEL = {"depth": 14, "width": 8, "stem_kernel": 15, "block_kernel": 7, "dropout": 0.1, "use_age_sex": True}


def group_scores(labels: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Test micro-F1 and macro-F1 (classes present) of every class group and of all classes."""
    scores = {}
    groups = {"all": tuple(class_names), **CLASS_GROUPS}
    for group, names in groups.items():
        columns = [class_names.index(n) for n in names if n in class_names]
        values = evaluate(labels[:, columns], probs[:, columns])
        scores[f"{group}_micro_f1"] = values["micro_f1"]
        scores[f"{group}_macro_f1"] = values["macro_f1_present"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated (the split stays seed 0)")
    parser.add_argument("--arms", default="none,both", help=f"model/features choices, of {','.join(FEATURE_SETS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="default bench/results/features (--smoke: a temporary folder)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    records, epochs, arms = (120, 1, "none,both") if args.smoke else (args.records, args.epochs, args.arms)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="bench-features-")) if args.smoke else ROOT / "bench" / "results" / "features"
    print(f"load average {os.getloadavg()[0]:.2f}; {records} synthetic records at 250 Hz, resnet {MODEL}, "
          f"{epochs} epochs, {args.threads} threads")
    dataset = load_synthetic(n=records, seed=0, fs=250, length=2500)
    started = time.perf_counter()
    splits = attach_features(split(dataset, seed=0), dataset)
    print(f"features of {records} records: {time.perf_counter() - started:.1f} s (cached afterwards)")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in arms.split(","):
            torch.manual_seed(seed)
            model = create_model("resnet", n_leads=dataset.n_leads, n_classes=dataset.n_classes,
                                 length=dataset.n_samples, features=arm, **MODEL)
            config = TrainConfig(lr=3e-3, batch_size=32, epochs=epochs, schedule="cosine", seed=seed,
                                 threads=args.threads)
            began = time.perf_counter()
            result = fit(model, splits.train, splits.val, config)
            probs = predict(model, splits.test)
            rows.append({"features": arm, "seed": seed, "best_epoch": result.best_epoch,
                         "val_micro_f1": result.best_metrics["val_micro_f1"],
                         **group_scores(splits.test.labels, probs, list(dataset.class_names)),
                         "train_s": time.perf_counter() - began})
            print(f"  {arm:8s} seed {seed}: test micro-F1 {rows[-1]['all_micro_f1']:.4f}, "
                  f"{rows[-1]['train_s']:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "features.csv"
    table.to_csv(args.out / name, index=False)
    mean = table.drop(columns="seed").groupby("features", sort=False).mean()
    columns = [c for c in mean.columns if c.endswith("_f1")]
    print(f"\nTest F1 at threshold 0.5, mean over seeds {args.seeds} (micro | macro over present classes):")
    print("| features | " + " | ".join(c.removesuffix("_f1").replace("_", " ") for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for arm, values in mean.iterrows():
        print(f"| {arm} | " + " | ".join(f"{values[c]:.3f}" for c in columns) + " |")
    print(f"written {args.out / name}; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
