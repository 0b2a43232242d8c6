"""A long search's driver as its trials pile up: trials per minute and the driver's CPU, minute by minute; and
what one experiment snapshot costs the driver's digest recorder at 300 to 10,000 trial folders.

    python bench/bench_long_run.py --minutes 10          # launch.py at toy sizes for 10 minutes, sampled
    python bench/bench_long_run.py --listing 300 3000 10000   # the snapshot's listing alone, before and after
    python bench/bench_long_run.py --smoke               # both at toy sizes, for CI; figures are noise

`--minutes M` runs `launch.py --space gru --n-records 120 --max-epochs 2 --num-samples 100000 --time-budget M`
(the smallest real trials, about a second each, so that minutes hold the trial count of an hours-long search:
a 7-minute GRU search at launch.py's defaults runs about 150 trials, eight hours would hold thousands) and
samples every 10 s: trial folders so far, the size of Ray's experiment state file, the driver's CPU seconds
(/proc/<pid>/stat). Per minute: trials started, the driver's CPU (seconds per second: 1.0 is a whole core, and
the driver is one Python thread, so near 1.0 trials wait for it).

Ray Tune saves the experiment snapshot (every trial's state, the searcher's) each time a trial writes a new
checkpoint (`CheckpointConfig(num_to_keep=1)`: search/tuner.py), and the run's digest recorder
(`search.integrity.DigestRecorder`) lists and digests the state files at every snapshot; both grow with the
trials. `--listing N...` times that listing over a synthetic experiment folder of N trial folders laid out as
Ray writes them (params.json/.pkl, result.json, progress.csv, an events file, one checkpoint folder of three
files): `search.integrity.state_files` as it is, against the recursive walk it replaced (`walk_everything`,
kept here to be measured), and a whole `Record.add` (listing, stat, digest of what changed) as a snapshot
pays it. Median of --repeats. Figures printed and written under --out (listing.csv; long_run.csv and the
10-second samples, long_run_samples.csv); bench/results/long_run/README.md reads them.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search import integrity  # noqa: E402

SAMPLE_EVERY_S = 10.0
TRIAL_FILES = ("params.json", "params.pkl", "result.json", "progress.csv", "events.out.tfevents.1796670756.vm")
CHECKPOINT_FILES = ("model.safetensors", "meta.json", "training_state.pt")


# ----------------------------------------------------------------------------------------------------------
# The listing at one snapshot
# ----------------------------------------------------------------------------------------------------------

def walk_everything(root: Path) -> Iterator[tuple[str, Path]]:
    """The listing `state_files` replaced: every file under `root`, at any depth, matched by name."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and any(
                fnmatch.fnmatch(path.name, pattern) for pattern in integrity.STATE_PATTERNS):
            yield path.relative_to(root).as_posix(), path


def make_experiment(root: Path, trials: int) -> None:
    """An experiment folder of `trials` trial folders as Ray Tune lays them out (contents are placeholders)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("experiment_state-2026-12-07_19-11-27.json", "search_gen_state-2026-12-07_19-11-27.json",
                 "searcher-state-2026-12-07_19-11-27.pkl", "tuner.pkl"):
        (root / name).write_bytes(os.urandom(64))
    for number in range(trials):
        trial = root / f"train_trial_{number:08x}_{number}_gru"
        (trial / "checkpoint_000002").mkdir(parents=True)
        for name in TRIAL_FILES:
            (trial / name).write_bytes(os.urandom(64))
        for name in CHECKPOINT_FILES:
            (trial / "checkpoint_000002" / name).write_bytes(os.urandom(64))


def timed(function, argument: object, repeats: int) -> float:
    """Median seconds of `repeats` calls of `function(argument)`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def listing(sizes: Sequence[int], repeats: int) -> pd.DataFrame:
    """Per size: seconds per listing, before and after, and per snapshot (`Record.add` on a folder it has seen,
    as every snapshot after the first), with the state files each listing found."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-long-run-") as work:
        os.environ["XDG_CONFIG_HOME"] = str(Path(work) / "config")  # the digest key of this bench, not the user's
        for trials in sizes:
            root = Path(work) / f"tune-{trials}"
            make_experiment(root, trials)
            before, after = list(walk_everything(root)), list(integrity.state_files(root))
            record = integrity.Record(Path(work))
            record.add(root)  # the first snapshot digests everything; the ones after list and stat
            rows.append({"trial_folders": trials, "state_files_before": len(before), "state_files_after": len(after),
                         "same_files": sorted(before) == sorted(after),
                         "walk_everything_s": round(timed(lambda at: list(walk_everything(at)), root, repeats), 4),
                         "state_files_s": round(timed(lambda at: list(integrity.state_files(at)), root, repeats), 4),
                         "record_add_s": round(timed(record.add, root, repeats), 4),
                         "repeats": repeats})
            rows[-1]["listing_ratio"] = round(rows[-1]["walk_everything_s"] / rows[-1]["state_files_s"], 1)
            print(f"{trials} trial folders: {rows[-1]['walk_everything_s']:.3f} s before, "
                  f"{rows[-1]['state_files_s']:.3f} s now ({rows[-1]['listing_ratio']}x), a snapshot's "
                  f"Record.add {rows[-1]['record_add_s']:.3f} s; same files: {rows[-1]['same_files']}", flush=True)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------
# A long search, sampled
# ----------------------------------------------------------------------------------------------------------

def launch_command(minutes: float, results: Path, records: int) -> list[str]:
    return [sys.executable, str(ROOT / "launch.py"), "--space", "gru", "--n-records", str(records),
            "--max-epochs", "2", "--num-samples", "100000", "--time-budget", f"{minutes:g}",
            "--results-dir", str(results)]


def driver_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_run(minutes: float, records: int) -> pd.DataFrame:
    """launch.py for `minutes` of budget, sampled every SAMPLE_EVERY_S: trial folders, state bytes, driver CPU."""
    with tempfile.TemporaryDirectory(prefix="bench-long-run-") as work:
        results, log = Path(work) / "results", Path(work) / "launch.log"
        command = launch_command(minutes, results, records)
        print("$ " + shlex.join(command), flush=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        started, samples = time.monotonic(), []
        while proc.poll() is None:
            tune = next(results.glob("gru-*/tune"), None)
            trials = len(list(tune.glob("train_trial_*"))) if tune else 0
            state = next(tune.glob("experiment_state-*.json"), None) if tune else None
            try:
                cpu = driver_cpu_s(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            samples.append({"t_s": round(time.monotonic() - started, 1), "trial_folders": trials,
                            "state_bytes": state.stat().st_size if state and state.exists() else 0,
                            "driver_cpu_s": round(cpu, 2), "load_avg": round(os.getloadavg()[0], 2)})
            time.sleep(SAMPLE_EVERY_S)
        proc.wait()
        if proc.returncode != 0:
            sys.exit(f"launch.py exited {proc.returncode}: {log.read_text()[-2000:]}")
    return pd.DataFrame(samples)


def per_minute(samples: pd.DataFrame) -> pd.DataFrame:
    """Trials started and the driver's CPU share in each minute of the run (from the samples at its ends)."""
    rows = []
    for minute in range(1, int(samples["t_s"].max() // 60) + 1):
        start = samples[samples["t_s"] <= (minute - 1) * 60].iloc[-1]
        end = samples[samples["t_s"] <= minute * 60].iloc[-1]
        span = end["t_s"] - start["t_s"]
        if span <= 0:
            continue
        rows.append({"minute": minute, "trials_at_end": int(end["trial_folders"]),
                     "trials_per_min": round((end["trial_folders"] - start["trial_folders"]) * 60 / span, 1),
                     "driver_cpu_per_s": round((end["driver_cpu_s"] - start["driver_cpu_s"]) / span, 3),
                     "state_mb": round(end["state_bytes"] / 2**20, 1), "load_avg": end["load_avg"]})
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=None, help="run launch.py this long, sampled")
    p.add_argument("--records", type=int, default=120, help="synthetic records of that run")
    p.add_argument("--listing", type=int, nargs="+", default=None, metavar="TRIALS",
                   help="time the snapshot's listing over this many trial folders")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="toy sizes for CI; figures are noise")
    p.add_argument("--out", type=Path, default=None, help="default bench/results/long_run (bench/out/... with --smoke)")
    args = p.parse_args(argv)
    if args.smoke:
        args.minutes, args.listing, args.repeats = 0.5, [30, 300], 1
    if args.minutes is None and args.listing is None:
        p.error("give --minutes, --listing or --smoke")
    out = args.out or ROOT / "bench" / ("out/long_run-smoke" if args.smoke else "results/long_run")
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/bench_long_run.py " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if args.listing:
        table = listing(args.listing, args.repeats).assign(measured=stamp, load_avg=round(os.getloadavg()[0], 2),
                                                          command=command)
        table.to_csv(out / "listing.csv", index=False)
        print(table.drop(columns=["command"]).to_string(index=False))
    if args.minutes:
        samples = sample_run(args.minutes, args.records)
        samples.to_csv(out / "long_run_samples.csv", index=False)
        minutes = per_minute(samples).assign(measured=stamp, command=command)
        minutes.to_csv(out / "long_run.csv", index=False)
        print(minutes.drop(columns=["command"]).to_string(index=False))


if __name__ == "__main__":
    main()
