"""Synthetic ECG set: generation speed on one core, and whether its diagnoses are learnable but not trivial.

    python bench/bench_synthetic.py            # speed (2,000 records) + learnability (CNN vs two baselines)
    python bench/bench_synthetic.py --smoke    # seconds: tiny sizes, one epoch

Speed: records per second of `generate()` on one core (BLAS and torch limited to one thread), at the study's
500 Hz x 5,000 and at the CPU search's 250 Hz x 2,500. CPU seconds are printed beside wall seconds because a
shared machine inflates wall time.

Learnability: train / validation / test sets from different seeds at the default noise and class imbalance.
Three predictors, each with thresholds tuned on validation (one for all classes, and one per class):
  - prevalence: every record scored with the training prevalence of each class;
  - logistic regression on per-lead mean, standard deviation and range (24 numbers per record);
  - a small 1-D CNN (four strided conv layers, global pooling) trained a few epochs on CPU.
Micro- and macro-F1 on the test set (macro over classes present in it). Target: the CNN clearly beats both
baselines while staying below about 0.95 micro-F1 (room for a search to matter).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before numpy/torch load their thread pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from ecg.synthetic import generate  # noqa: E402


def bench_speed(n: int) -> None:
    generate(min(n, 64), seed=99)  # warm-up (imports, caches)
    for fs, length in ((500, 5000), (250, 2500)):
        cpu, wall = time.process_time(), time.perf_counter()
        generate(n, seed=1, fs=fs, length=length)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"speed  {n} records at {fs} Hz x {length}: {n / cpu:7.0f} records/s of CPU time "
              f"({cpu:.2f} s CPU, {wall:.2f} s wall, {n / wall:.0f} records/s wall)")


def features(signals: np.ndarray) -> np.ndarray:
    """Per-lead mean, standard deviation and range, in mV."""
    x = signals.astype(np.float32) / 204.9
    return np.concatenate([x.mean(axis=2), x.std(axis=2), x.max(axis=2) - x.min(axis=2)], axis=1)


def tune_global(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """One threshold for every class, the one in a grid that maximises micro-F1 on (y, p)."""
    grid = np.linspace(0.02, 0.98, 49)
    scores = [f1_score(y, p > t, average="micro", zero_division=0) for t in grid]
    return np.full(y.shape[1], grid[int(np.argmax(scores))])


def tune_per_class(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per class, the threshold in a grid that maximises that class's F1 on (y, p); 0.5 where it is absent."""
    grid = np.linspace(0.02, 0.98, 49)
    out = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        if y[:, c].any():
            scores = [f1_score(y[:, c], p[:, c] > t, zero_division=0) for t in grid]
            out[c] = grid[int(np.argmax(scores))]
    return out


def report(name: str, y_val: np.ndarray, p_val: np.ndarray, y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Test micro/macro-F1 with thresholds tuned on validation, two ways: one for all classes (for micro-F1)
    and one per class (for each class's F1). Returns the first pair."""
    present = y.any(axis=0)
    out = []
    for how, thresholds in (("one threshold", tune_global(y_val, p_val)), ("per class", tune_per_class(y_val, p_val))):
        pred = p > thresholds
        micro = f1_score(y, pred, average="micro", zero_division=0)
        macro = f1_score(y[:, present], pred[:, present], average="macro", zero_division=0)
        out.append((micro, macro))
        print(f"learn  {name:28s} {how:13s} micro-F1 {micro:.3f}   macro-F1 {macro:.3f}")
    return out[0]


def prevalence_scores(train_y: np.ndarray, n: int) -> np.ndarray:
    return np.tile(train_y.mean(axis=0), (n, 1))


def logistic_scores(train_x, train_y, *others) -> list[np.ndarray]:
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    outs = [np.zeros((len(x), train_y.shape[1])) for x in others]
    for c in range(train_y.shape[1]):
        if 0 < train_y[:, c].sum() < len(train_y):
            model = LogisticRegression(max_iter=2000, C=1.0).fit((train_x - mean) / std, train_y[:, c])
            for out, x in zip(outs, others):
                out[:, c] = model.predict_proba((x - mean) / std)[:, 1]
        else:
            for out in outs:
                out[:, c] = train_y[:, c].mean()
    return outs


def cnn_scores(train, val, test, epochs: int, seed: int) -> list[np.ndarray]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)

    def block(cin, cout, k):
        return nn.Sequential(nn.Conv1d(cin, cout, k, stride=2, padding=k // 2, bias=False), nn.BatchNorm1d(cout),
                             nn.ReLU())

    n_leads, n_classes = train.signals.shape[1], train.labels.shape[1]
    body = nn.Sequential(block(n_leads, 32, 15), block(32, 48, 9), block(48, 64, 9), block(64, 96, 9),
                         nn.AdaptiveMaxPool1d(1), nn.Flatten())
    model = nn.Sequential(body, nn.Dropout(0.2), nn.Linear(96, n_classes))
    x = torch.from_numpy(train.signals.astype(np.float32) / train.units_per_mv)
    y = torch.from_numpy(train.labels.astype(np.float32))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=epochs * -(-len(x) // 64))
    loss_fn = nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            # Augmentation: random gain and shift, as a search trial would use.
            xb = x[batch] * (1 + 0.1 * torch.randn(len(batch), 1, 1))
            xb = torch.roll(xb, int(torch.randint(0, xb.shape[2], ())), dims=2)
            loss = loss_fn(model(xb), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"       cnn epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f} "
              f"({time.perf_counter() - started:.1f} s)")
    model.eval()
    outs = []
    with torch.no_grad():
        for d in (val, test):
            xs = torch.from_numpy(d.signals.astype(np.float32) / d.units_per_mv)
            outs.append(torch.cat([torch.sigmoid(model(xs[i : i + 256])) for i in range(0, len(xs), 256)]).numpy())
    return outs


def bench_learnability(n_train: int, n_eval: int, epochs: int, fs: int, length: int) -> None:
    sets = [generate(n, seed=s, fs=fs, length=length) for n, s in ((n_train, 100), (n_eval, 101), (n_eval, 102))]
    train, val, test = sets
    print(f"learn  data: {n_train} train / {n_eval} val / {n_eval} test records, {fs} Hz x {length}, "
          f"{train.labels.shape[1]} classes, default noise and imbalance")
    results = {}
    p_val, p_test = prevalence_scores(train.labels, len(val)), prevalence_scores(train.labels, len(test))
    results["prevalence"] = report("prevalence", val.labels, p_val, test.labels, p_test)
    p_val, p_test = logistic_scores(features(train.signals), train.labels, features(val.signals),
                                    features(test.signals))
    results["logistic"] = report("logistic regression (stats)", val.labels, p_val, test.labels, p_test)
    started = time.perf_counter()
    p_val, p_test = cnn_scores(train, val, test, epochs, seed=0)
    results["cnn"] = report(f"CNN ({epochs} epochs, {time.perf_counter() - started:.0f} s)", val.labels, p_val,
                            test.labels, p_test)
    best_base = max(results["prevalence"][0], results["logistic"][0])
    print(f"learn  CNN micro-F1 minus best baseline: {results['cnn'][0] - best_base:+.3f}; "
          f"below 0.95: {results['cnn'][0] < 0.95}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one epoch: checks the script runs")
    parser.add_argument("--n", type=int, default=2000, help="records for the speed test and the training set")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--fs", type=int, default=250, help="sampling rate of the learnability sets")
    parser.add_argument("--length", type=int, default=2500)
    args = parser.parse_args()
    if args.smoke:
        args.n, args.epochs = 200, 1
    bench_speed(args.n)
    bench_learnability(args.n, max(args.n // 4, 100), args.epochs, args.fs, args.length)


if __name__ == "__main__":
    main()
