"""How much the validation split can tell the top of a search apart: this system's own top trials on test.

    python bench/peer_topk.py --seeds 5 --space all --budget 7 --out bench/results/peer/topk
    python bench/peer_topk.py --gather RUNS --out DIR      # summarise runs made before (RUNS/<seed>/<run>)

Each seed runs `launch.py --space S --seed s --n-records 1000 --num-samples 100000 --top-k 10 --time-budget B'`
alone on the machine, as bench_peer.py --alone runs this system (B' = the budget less the median start-up of
startup.csv, so that launch to the budget's end takes the budget). The run evaluates its ten best trials on the
test split, each from its best checkpoint, with the top-k and greedy ensembles and the model the run chose
(test_results.csv, every choice on validation). The tables: per validation rank, the mean test micro-F1 over the
seeds (under the 0.5 threshold, which is what bench_peer.py's retrained winners are scored with); the rank
correlation of validation and test among the ten; and what a different rule for the winner would have scored.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 9.0  # startup.csv's median from launch.py to the first epoch, rounded (bench/results/peer)


def run_seed(space: str, seed: int, budget_min: float, runs: Path) -> None:
    """One search, alone, its run folder under runs/<seed>/."""
    command = [sys.executable, str(ROOT / "launch.py"), "--space", space, "--seed", str(seed), "--n-records", "1000",
               "--num-samples", "100000", "--top-k", "10", "--time-budget", f"{budget_min - STARTUP_S / 60:.2f}",
               "--results-dir", str(runs / str(seed))]
    load = os.getloadavg()[0]
    with open(runs / f"seed{seed}.log", "w") as log:
        started = time.time()
        code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    print(f"seed {seed}: exit {code} in {time.time() - started:.0f} s, load {load:.2f} -> {os.getloadavg()[0]:.2f}",
          flush=True)


def gather(runs: Path) -> pd.DataFrame:
    """One row per seed x evaluated model (threshold 0.5 and the rule the run chose): validation and test
    micro-F1 and the validation rank of single trials."""
    rows = []
    for seed_dir in sorted(p for p in runs.iterdir() if p.is_dir() and p.name.isdigit()):
        for run in sorted(seed_dir.iterdir()):
            results = run / "test_results.csv"
            if not results.exists():
                continue
            frame = pd.read_csv(results, dtype={"trial_id": str})
            for row in frame.itertuples():
                if row.thresholds != "0.5" and not row.chosen:
                    continue
                rank = int(row.model[4:]) if row.model.startswith("rank") else None
                rows.append({"seed": int(seed_dir.name), "model": row.model, "rank": rank,
                             "thresholds": row.thresholds, "chosen_rule": bool(row.chosen),
                             "val_micro_f1": row.val_micro_f1, "test_micro_f1": row.test_micro_f1,
                             "cv_score": row.cv_score})
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> str:
    """The tables of the module docstring, as Markdown."""
    at_half = rows[rows["thresholds"].astype(str) == "0.5"]
    singles = at_half[at_half["rank"].notna()]
    by_rank = singles.groupby("rank").agg(seeds=("seed", "nunique"), val=("val_micro_f1", "mean"),
                                          test=("test_micro_f1", "mean")).reset_index()
    lines = ["## Single trials by validation rank (threshold 0.5, mean over seeds)", "",
             "| rank | seeds | val micro-F1 | test micro-F1 |", "|---|---|---|---|"]
    lines += [f"| {int(r.rank)} | {r.seeds} | {r.val:.4f} | {r.test:.4f} |" for r in by_rank.itertuples()]
    spearman = singles.groupby("seed").apply(lambda g: g["val_micro_f1"].rank().corr(g["test_micro_f1"].rank()))
    lines += ["", "Spearman correlation of validation and test among each seed's ten: "
              + ", ".join(f"seed {s} {v:+.2f}" for s, v in spearman.items())
              + f" (mean {spearman.mean():+.2f})", ""]
    rules = {"rank1 (the winner bench_peer.py retrains)": lambda g: g[g["rank"] == 1],
             "one of the top 3 at random (their mean)": lambda g: g[g["rank"].between(1, 3)],
             "ensemble of the top k (0.5)": lambda g: g[g["model"] == "ensemble_topk"],
             "greedy ensemble (0.5)": lambda g: g[g["model"] == "ensemble_greedy"]}
    lines += ["## What each rule for the final model scored on test (mean over seeds)", "",
              "| rule | per seed | mean |", "|---|---|---|"]
    for name, pick in rules.items():
        per_seed = at_half.groupby("seed").apply(lambda g: pick(g)["test_micro_f1"].mean())
        lines.append(f"| {name} | {' '.join(f'{v:.3f}' for v in per_seed)} | {per_seed.mean():.4f} |")
    chosen = rows[rows["chosen_rule"]]
    picked = chosen.loc[chosen.groupby("seed")["cv_score"].idxmax()]
    lines.append(f"| the run's chosen model (its own thresholds) | {' '.join(f'{v:.3f}' for v in picked['test_micro_f1'])}"
                 f" | {picked['test_micro_f1'].mean():.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--space", default="all")
    p.add_argument("--budget", type=float, default=7.0, help="minutes from launch to the budget's end")
    p.add_argument("--gather", type=Path, help="summarise the runs under this folder instead of running")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.gather or args.out / "runs"
    if args.gather is None:
        runs.mkdir(exist_ok=True)
        for seed in range(args.seeds):
            run_seed(args.space, seed, args.budget, runs)
    rows = gather(runs)
    rows.to_csv(args.out / "topk.csv", index=False)
    text = summarise(rows)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
