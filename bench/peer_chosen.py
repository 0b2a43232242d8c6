"""What each method of a bench_peer piece chose to train: its trials' configurations, epochs and epoch seconds.

    python bench/peer_chosen.py WORK [WORK ...] [--out DIR]     # WORK: a piece's folder kept by bench_peer.py --keep

For every trial: the method, its config's searched values, the epochs it trained and their median `epoch_time_s`
(measured inside `ecg.train.fit`, the same code for every method). The table printed (and `chosen.csv`, with
`--out`) gives, per method and per value of the parameters that set an epoch's cost, the share of the method's
trial-epochs spent there and their median seconds: where one search's budget went against another's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_peer import METHODS, THIS, peer_events, this_system_events  # noqa: E402
from ecg.train.config import flatten  # noqa: E402

# The searched values that decide what an epoch costs (input rate, sequence shape, width, batch).
COST_PARAMS = ("data/fs", "model/segmentation", "model/bidirectional", "model/hidden", "model/shared",
               "model/version", "optim/batch_size")


def trials_of(work: Path) -> pd.DataFrame:
    """One row per trial of every method in the piece's work folder: method, trial, epochs, median epoch
    seconds, best validation micro-F1, and its flat config."""
    rows = []
    for method in METHODS:
        if method == THIS:
            space = next((p.name.split("-")[0] for p in sorted((work / "ray").glob("*-*"))), None)
            if space is None:
                continue
            events, configs, _ = this_system_events(work, space, 0.0)
        else:
            events, configs = peer_events(work, method, 0.0)
        for trial, epochs in events.groupby("trial"):
            config = configs.get(str(trial), {})
            flat = flatten(config) if any(isinstance(v, dict) for v in config.values()) else config
            rows.append({"work": work.name, "method": method, "trial": str(trial), "epochs": len(epochs),
                         "median_epoch_s": float(epochs["epoch_time_s"].median()),
                         "best_val": float(epochs["val_micro_f1"].max()), **flat})
    return pd.DataFrame(rows)


def where_epochs_went(trials: pd.DataFrame, params: tuple[str, ...] = COST_PARAMS) -> pd.DataFrame:
    """Per method and per value of each parameter: the share of the method's trial-epochs and their median
    epoch seconds (weighted by epochs)."""
    rows = []
    for method, mine in trials.groupby("method"):
        total = mine["epochs"].sum()
        for param in params:
            if param not in mine:
                continue
            for value, group in mine.groupby(mine[param].astype(str)):
                weighted = group.loc[group.index.repeat(group["epochs"]), "median_epoch_s"]
                rows.append({"method": method, "param": param, "value": value, "trials": len(group),
                             "epoch_share": round(group["epochs"].sum() / total, 3),
                             "median_epoch_s": round(float(weighted.median()), 3)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path, nargs="+", help="a piece's work folder (bench_peer.py --keep)")
    p.add_argument("--out", type=Path, default=None, help="write chosen.csv (per trial) and epochs_by_value.csv here")
    args = p.parse_args(argv)
    missing = [str(w) for w in args.work if not w.is_dir()]
    if missing:
        p.exit(2, f"peer_chosen.py: error: not a folder: {', '.join(missing)}\n")
    trials = pd.concat([trials_of(w) for w in args.work], ignore_index=True)
    if not len(trials):
        p.exit(2, "peer_chosen.py: error: no method's epochs in " + ", ".join(map(str, args.work)) + "\n")
    table = where_epochs_went(trials)
    print(trials.groupby("method").agg(trials=("trial", "count"), trial_epochs=("epochs", "sum"),
                                       median_epoch_s=("median_epoch_s", "median")).to_string())
    print(table.pivot_table(index=["param", "value"], columns="method",
                            values=["epoch_share", "median_epoch_s"]).round(3).to_string())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        trials.to_csv(args.out / "chosen.csv", index=False)
        table.to_csv(args.out / "epochs_by_value.csv", index=False)


if __name__ == "__main__":
    main()
