"""Copy a multi-objective run's pareto.csv here and print the front as a Markdown table with the run's counts.

    python bench/results/pareto/table.py results/<run>
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["trial_number", "best_val_micro_f1", "params", "best_epoch", "model/version", "model/width",
           "model/width_1d", "model/blocks_1d", "model/kernels", "model/kernel", "optim/lr", "optim/batch_size"]


def main(run_dir: Path) -> None:
    here = Path(__file__).parent
    shutil.copy(run_dir / "pareto.csv", here / "pareto.csv")
    front = pd.read_csv(run_dir / "pareto.csv", dtype={"trial_id": str})
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
    info = json.loads((run_dir / "run.json").read_text())
    trained = trials[trials["status"] == "TERMINATED"]
    print(f"{len(trials)} trials: {len(trained)} trained ({int(trained['stopped_by_asha'].sum())} stopped by ASHA), "
          f"{info['over_budget']} over budget; {len(front)} on the front; search {info['search_time_s']:.0f} s, "
          f"run {info['wall_time_s']:.0f} s; winners {', '.join(info['winners'])}\n")
    shown = [c for c in COLUMNS if c in front]
    print("| " + " | ".join(shown) + " |\n|" + "---|" * len(shown))
    for _, row in front.iterrows():
        cells = [f"{row[c]:.4f}" if c == "best_val_micro_f1" else f"{row[c]:.2g}" if c == "optim/lr"
                 else "" if pd.isna(row[c]) else str(int(row[c])) if isinstance(row[c], float) and row[c] == int(row[c])
                 else str(row[c]) for c in shown]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
