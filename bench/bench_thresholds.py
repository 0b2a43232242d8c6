#!/usr/bin/env python
"""Do the thresholds and ensembles chosen on validation help on test? Over seeds of the default search.

    python bench/bench_thresholds.py                 # seeds 0-4 of `python launch.py --space ecgnet --seed S`
    python bench/bench_thresholds.py --smoke         # CI: one tiny search (120 records, 2 trials, 1 epoch)

For each seed it runs the default ECGNet search into --runs-dir, or reuses a complete run folder of that
seed already there (the searches take minutes each; the evaluation seconds). Every run's winners are then
evaluated again from their saved checkpoints with the code as it is now (`search.winners.reevaluate`), the
run's test_results.csv, per_class.csv and report.html are rewritten with it, and the table compares on test:
rank1 at threshold 0.5; rank1 at the rule chosen on validation; the greedy ensemble at its chosen rule.
Goal (issue 18): on average the chosen rule's test micro-F1 >= the 0.5 rule's - 0.005, with a higher
test macro-F1. Writes thresholds.csv and README.md into --out.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg.run_folder import (PER_CLASS, TEST_RESULTS, RunFolder, RunFolderError, write_atomic,  # noqa: E402
                            write_csv)
from search.report import write_report  # noqa: E402
from search.winners import reevaluate  # noqa: E402

SMOKE_ARGS = ("--n-records", "120", "--num-samples", "2", "--max-epochs", "1", "--grace-period", "1")
TOLERANCE = 0.005


def find_run(runs_dir: Path, seed: int, smoke: bool) -> Path | None:
    """A complete run folder of `seed` in `runs_dir` made with the same search settings, or None."""
    for path in sorted(p for p in runs_dir.glob("*") if p.is_dir()):
        try:
            record = RunFolder.open(path).record
        except RunFolderError:
            continue
        args = record.args
        if record.status == "complete" and record.seed == seed and args.get("space") == "ecgnet" \
                and (args.get("num_samples") == 2) == smoke:
            return path
    return None


def launch(runs_dir: Path, seed: int, smoke: bool) -> Path:
    command = [sys.executable, str(ROOT / "launch.py"), "--space", "ecgnet", "--seed", str(seed),
               "--results-dir", str(runs_dir), *(SMOKE_ARGS if smoke else ())]
    print("running:", " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"  {time.time() - started:.0f} s", flush=True)
    run = find_run(runs_dir, seed, smoke)
    if run is None:
        raise RuntimeError(f"the search of seed {seed} left no complete run folder in {runs_dir}")
    return run


def row(frame: pd.DataFrame, model: str, rule: str | None = None) -> pd.Series:
    """The row of `model` at threshold `rule`, or at its chosen rule when `rule` is None."""
    part = frame[frame["model"] == model]
    part = part[part["chosen"]] if rule is None else part[part["thresholds"].astype(str) == rule]
    return part.iloc[0]


def evaluate_seed(run_dir: Path, seed: int) -> dict:
    folder = RunFolder.open(run_dir)
    with folder.locked():  # the run's results are rewritten with the new rules: no search may write it meanwhile
        results = reevaluate(folder)
        folder.write_csv(TEST_RESULTS, results.test_results)
        folder.write_csv(PER_CLASS, results.per_class)
        record = folder.record
        record.chosen_model = results.chosen
        folder.save(record)
        write_report(folder)
    info = record.to_dict()
    frame = results.test_results
    base, chosen = row(frame, "rank1", "0.5"), row(frame, "rank1")
    out = {"seed": seed, "run": run_dir.name, "search_commit": str(info.get("git", {}).get("commit", ""))[:7],
           "val_records": int(base["n_val_records"]),
           "rank1_rule": chosen["thresholds"],
           "rank1@0.5_micro": base["test_micro_f1"], "rank1@chosen_micro": chosen["test_micro_f1"],
           "rank1@0.5_macro": base["test_macro_f1"], "rank1@chosen_macro": chosen["test_macro_f1"]}
    if (frame["model"] == "ensemble_greedy").any():
        greedy = row(frame, "ensemble_greedy")
        out.update({"greedy_rule": greedy["thresholds"], "greedy@chosen_micro": greedy["test_micro_f1"],
                    "greedy@chosen_macro": greedy["test_macro_f1"], "greedy_members": len(greedy["members"].split())})
    return out


def readme(table: pd.DataFrame, command: str, smoke: bool) -> str:
    mean = table.mean(numeric_only=True)
    micro_ok = mean["rank1@chosen_micro"] >= mean["rank1@0.5_micro"] - TOLERANCE
    macro_ok = mean["rank1@chosen_macro"] > mean["rank1@0.5_macro"]
    lines = [
        "# Thresholds and ensembles chosen on validation, judged on test" + (" (smoke run: noise)" if smoke else ""),
        "",
        f"Command: `{command}` (at commit `{_git()}`).",
        "",
        "Each seed is the default search (`python launch.py --space ecgnet --seed S`: 1,000 synthetic records, "
        "700/100/200, 12 trials of up to 6 epochs); its winners were evaluated again from their checkpoints with "
        "this commit's rules (`search_commit`: the code that ran the search itself). `rank1@chosen`: the best trial at the threshold rule chosen by cross-fitting on "
        "validation; `greedy@chosen`: the greedy ensemble at its chosen rule. Test took part in no choice.",
        "",
        "```\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}") + "\n```",
        "",
        f"Mean over {len(table)} seeds: test micro-F1 rank1@0.5 {mean['rank1@0.5_micro']:.4f}, rank1@chosen "
        f"{mean['rank1@chosen_micro']:.4f}" + (f", greedy@chosen {mean['greedy@chosen_micro']:.4f}" if "greedy@chosen_micro" in mean else "")
        + f"; test macro-F1 rank1@0.5 {mean['rank1@0.5_macro']:.4f}, rank1@chosen {mean['rank1@chosen_macro']:.4f}"
        + (f", greedy@chosen {mean['greedy@chosen_macro']:.4f}" if "greedy@chosen_macro" in mean else "") + ".",
        "",
        f"Goal: chosen micro-F1 >= 0.5-rule micro-F1 - {TOLERANCE}: {'met' if micro_ok else 'MISSED'}; "
        f"chosen macro-F1 > 0.5-rule macro-F1: {'met' if macro_ok else 'MISSED'}.",
        "",
    ]
    return "\n".join(lines)


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "results" / "bench-thresholds",
                        help="where the searches' run folders are (reused) or go")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "thresholds")
    parser.add_argument("--smoke", action="store_true", help="one tiny search: CI checks the bench runs")
    parser.add_argument("--note", default="", help="a paragraph for README.md (e.g. how the run folders were made)")
    args = parser.parse_args(argv)
    seeds = args.seeds[:1] if args.smoke else args.seeds
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        run = find_run(args.runs_dir, seed, args.smoke) or launch(args.runs_dir, seed, args.smoke)
        print(f"seed {seed}: evaluating {run}", flush=True)
        rows.append(evaluate_seed(run, seed))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    command = "python bench/bench_thresholds.py" + (" --smoke" if args.smoke else "") + \
        ("" if args.smoke or seeds == [0, 1, 2, 3, 4] else " --seeds " + " ".join(map(str, seeds)))
    text = readme(table, command, args.smoke) + (f"\n{args.note}\n" if args.note else "")
    print(next(line for line in text.splitlines() if line.startswith("Goal:")))
    write_csv(table, args.out / "thresholds.csv")
    write_atomic(args.out / "README.md", lambda tmp: tmp.write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
