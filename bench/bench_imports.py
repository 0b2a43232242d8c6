"""What a process pays to import the project before it does anything: each module in a fresh interpreter,
the median of `--repeats` starts, less the bare interpreter's start, side by side in one run.

A trial's Ray worker imports `search.trainable` before its first epoch, once per trial; the driver imports
`search.runner` before Ray starts and `search.finish` (Ray Tune, Optuna, torch) while Ray starts, once per search. scikit-learn's metrics (which pull in scipy.stats) and scipy.signal are shown
beside them: `ecg.metrics` computes its scores from per-class counts instead, and `ecg.features` loads its
scipy-based modules only for a trial that uses features.

    python bench/bench_imports.py      # prints a Markdown table (kept in bench/results/imports/README.md)
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The last but one is what a trial's worker imported before ecg.metrics and ecg.features stopped pulling in
# scikit-learn's metrics and scipy.signal: measured beside what it imports now.
MODULES = ("sklearn.metrics", "scipy.stats", "scipy.signal", "ecg.metrics", "ecg.features.layout", "ecg.features.attach",
           "search.trainable", "search.trainable, sklearn.metrics, scipy.signal", "search.runner",
           "search.runner, search.finish")


def start_s(code: str, repeats: int) -> float:
    """Median wall seconds of `python -c code` in a fresh interpreter."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    bare = start_s("pass", args.repeats)
    print(f"bare interpreter start: {bare:.3f} s (subtracted below; median of {args.repeats})\n")
    print("| module | import (s) | pulls in sklearn / scipy.stats / scipy.signal |")
    print("|---|---|---|")
    for module in MODULES:
        seconds = start_s(f"import {module}", args.repeats) - bare
        probe = (f"import sys; import {module}; print(' / '.join('yes' if m in sys.modules else 'no' "
                 f"for m in ('sklearn', 'scipy.stats', 'scipy.signal')))")
        pulled = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True,
                                text=True).stdout.strip()
        print(f"| `{module}` | {seconds:.2f} | {pulled} |", flush=True)


if __name__ == "__main__":
    main()
