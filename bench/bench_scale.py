"""What the whole pipeline costs as the study grows: 1k, 5k and 20k synthetic records (issue 15).

    python bench/bench_scale.py                       # 1,000, 5,000 and 20,000 records at 100 Hz x 1,000
    python bench/bench_scale.py --sizes 1000,5000     # fewer sizes
    python bench/bench_scale.py --smoke               # 300 records, for CI; figures are noise

Each size runs in a fresh Python process (so the driver's peak RSS is that size's own) that does what
`launch.py` does: load the records (the synthetic set, 100 Hz so 20k records fit this machine), split them,
put the trials' data into Ray's object store once (`tune.with_parameters`), run 2 concurrent 1-epoch trials
(GRU space, FIFO) and evaluate the winner on the test split. It is `search.run(SearchOptions(...))` on a
local Ray the bench starts first, so it can also measure:
  * load time: warm (the synthetic set cached by an earlier load, as every run after the first) and split time;
  * the driver's peak RSS (getrusage), and each trial worker's peak RSS, its private part (RssAnon) and the
    shared object-store pages it maps (RssShmem), sampled from /proc every 0.2 s;
  * a worker's RSS before it holds any data (a Ray task that imports the trainable's modules), so that
    "per-trial memory" = peak worker RSS - that baseline, against one float32 copy of the trial's train+val
    signals (goal <= 1.3x: the int16 records are read zero-copy from the object store and each batch is
    converted on its own, so a trial holds no float32 copy of its split);
  * object-store bytes: the largest use seen while the search ran, against the size of the trial data
    (train+val arrays): ~1x means the data is in the store once, shared by both trials;
  * trial start: the trainable's own set-up (`setup_s`) and Ray's part, as bench_search.py section 4.
Figures and the growth 1k -> 20k: printed, and in bench/results/scale/ (scale.csv, README.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ecg.run_folder import RunFolder  # noqa: E402  (the project on the path first)

FS, LENGTH = 100, 1000  # 10 s at 100 Hz: 20k records x 8 leads x 1,000 samples are 320 MB as int16
GOALS = {"per_trial_over_float32": 1.3, "store_over_data": 1.05, "load_split_20k_s": 10.0}


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssShmem of `pid` in bytes (empty when the process is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return {}
    return out


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below `root` (the driver: its local Ray and Ray's workers)."""
    parents, names = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            names[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = names.get(child, "")
                frontier.append(child)
    return found


class Monitor:
    """Samples every 0.2 s, in the background: each trial worker's memory, and the object store's use."""

    def __init__(self) -> None:
        self.workers: dict[int, dict[str, int]] = {}  # pid -> peak of each field
        self.store_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _store_used(self) -> int:
        import ray
        from ray._private import internal_api, state

        try:
            return int(internal_api.get_memory_info_reply(state.state, timeout_seconds=5).store_stats
                       .object_store_bytes_used)
        except Exception:  # noqa: BLE001 - a busy raylet: skip this sample
            return 0 if not ray.is_initialized() else self.store_peak

    def _run(self) -> None:
        me, tick = os.getpid(), 0
        while not self._stop.is_set():
            for pid, cmd in descendants(me).items():
                # Trial workers carry the trainable's name in their process title once they run it.
                if cmd.startswith("ray::") and ("train_trial" in cmd or "ImplicitFunc" in cmd):
                    status = proc_status(pid)
                    peak = self.workers.setdefault(pid, {})
                    for key, value in status.items():
                        peak[key] = max(peak.get(key, 0), value)
            if tick % 5 == 0:  # the store's figure through the raylet: once a second is enough
                self.store_peak = max(self.store_peak, self._store_used())
            tick += 1
            self._stop.wait(0.2)

    def __enter__(self) -> "Monitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def start_ray(num_cpus: int) -> None:
    """A local Ray for this size. Ray gives its raylet a fixed 30 s to register (ray/_private/node.py), which
    this shared machine under heavy load sometimes misses: try up to three times."""
    import ray

    for attempt in range(3):
        try:
            # address="local": a new instance of our own, never a cluster someone else started on this machine.
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False)
            return
        except Exception:  # noqa: BLE001 - "The current node timed out during startup"
            ray.shutdown()
            if attempt == 2:
                raise


def baseline_worker_rss() -> int:
    """RSS of a Ray worker that has imported what a trial imports, before it holds any data."""
    import ray

    @ray.remote(num_cpus=1)
    def imported() -> int:
        import search.trainable  # noqa: F401 - torch, the models, ecg.train: a trial's imports
        import spaces  # noqa: F401

        return proc_status(os.getpid())["VmRSS"]

    return int(ray.get(imported.remote()))


def trial_data_bytes(data: Any) -> tuple[int, int]:
    """(bytes of the trial data's arrays as stored, bytes of one float32 copy of its train+val signals)."""
    stored = float32 = 0
    for split in (data.train, data.val):
        for name in ("signals", "labels", "age", "sex"):
            array = getattr(split, name, None)
            stored += int(getattr(array, "nbytes", 0))
        float32 += int(split.signals.size) * 4
    return stored, float32


def one_size(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline at `args.one` records, in this (fresh) process; returns its figures."""
    import ray

    import search
    from bench_search import read_run
    from search_analysis import trial_start_times
    from search import data as run_data
    from search.options import SearchOptions

    n = args.one
    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-"))
    options = SearchOptions(space="gru", n_records=n, fs=FS, num_samples=2, max_epochs=1, grace_period=1,
                            scheduler="fifo", max_concurrent=2, top_k=1, seed=0, cpus_per_trial=1.0,
                            results_dir=work).resolved(0)
    started = time.perf_counter()
    dataset, source = run_data.load(options)  # generates and caches the set the first time
    first_load_s = time.perf_counter() - started
    started = time.perf_counter()
    run_data.split(dataset, seed=0, source=source)
    first_split_s = time.perf_counter() - started  # includes importing the stratification code
    del dataset
    # Warm, as every run after the first: the cached set, and the split's code already imported.
    started = time.perf_counter()
    dataset, source = run_data.load(options)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    split = run_data.split(dataset, seed=0, source=source)
    split_s = time.perf_counter() - started
    stored, float32 = trial_data_bytes(split.trial_data)
    if args.data_only:
        return data_only(n, split, stored, float32, first_load_s, first_split_s, load_s, split_s)
    del dataset, split

    # The bench's own local Ray (search.run uses a Ray already running and leaves it up), with the
    # object store sized for the largest size's data.
    start_ray(num_cpus=2)
    baseline = baseline_worker_rss()
    run_started = time.perf_counter()
    with Monitor() as monitor:
        run_dir = search.run(options)
    run_s = time.perf_counter() - run_started
    record = RunFolder.open(run_dir).record
    trials, _ = read_run(run_dir)
    starts = trial_start_times(trials, float(record.fit_started), 2)
    ray.shutdown()
    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers = sorted(monitor.workers.values(), key=lambda w: -w.get("VmRSS", 0))[:2]
    per_trial = [w.get("VmRSS", 0) - baseline for w in workers]
    return {
        "records": n, "train_val_records": int(record.data.split["train"] + record.data.split["val"]),
        "first_load_s": round(first_load_s, 2), "first_split_s": round(first_split_s, 2), "load_s": round(load_s, 2), "split_s": round(split_s, 2),
        "load_split_s": round(load_s + split_s, 2),
        "driver_peak_rss_mb": round(driver_peak / 2**20, 1),
        "worker_baseline_rss_mb": round(baseline / 2**20, 1),
        "worker_peak_rss_mb": ";".join(f"{w.get('VmRSS', 0) / 2**20:.1f}" for w in workers),
        "worker_peak_anon_mb": ";".join(f"{w.get('RssAnon', 0) / 2**20:.1f}" for w in workers),
        "worker_peak_shmem_mb": ";".join(f"{w.get('RssShmem', 0) / 2**20:.1f}" for w in workers),
        "per_trial_mb": round(max(per_trial, default=math.nan) / 2**20, 1),
        "float32_train_val_mb": round(float32 / 2**20, 1),
        "per_trial_over_float32": round(max(per_trial, default=math.nan) / float32, 3),
        "trial_data_mb": round(stored / 2**20, 1),
        "store_peak_mb": round(monitor.store_peak / 2**20, 1),
        "store_over_data": round(monitor.store_peak / stored, 3) if stored else math.nan,
        "trial_setup_s": round(float(starts["setup_s"].median()), 2),
        "trial_start_s": round(float(starts["start_s"].median()), 2),
        "tuner_fit_s": round(float(record.fit_time_s if record.fit_time_s is not None else math.nan), 1),
        "run_s": round(run_s, 1),
    }


def data_only(n: int, split: Any, stored: int, float32: int, first_load_s: float, first_split_s: float,
              load_s: float, split_s: float) -> dict[str, Any]:
    """The figures that need no trial: load, split, and the trial data put into a local object store once
    (what `tune.with_parameters` does), for sizes whose trials take too long on this machine."""
    import ray

    start_ray(num_cpus=1)
    with Monitor() as monitor:
        ref = ray.put(split.trial_data)
        time.sleep(3)  # a few store samples with the data in it
    del ref
    ray.shutdown()
    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"records": n, "train_val_records": len(split.train) + len(split.val),
            "first_load_s": round(first_load_s, 2), "first_split_s": round(first_split_s, 2),
            "load_s": round(load_s, 2), "split_s": round(split_s, 2), "load_split_s": round(load_s + split_s, 2),
            "driver_peak_rss_mb": round(driver_peak / 2**20, 1),
            "float32_train_val_mb": round(float32 / 2**20, 1), "trial_data_mb": round(stored / 2**20, 1),
            "store_peak_mb": round(monitor.store_peak / 2**20, 1),
            "store_over_data": round(monitor.store_peak / stored, 3) if stored else math.nan,
            "trials": "none (data only)"}


def growth(table: pd.DataFrame) -> pd.DataFrame:
    """Each figure at the largest size that has it over the smallest that has it (data-only sizes have no
    trial figures), and what the data adds to a trial's memory per float32 byte."""
    rows = []
    for column in ("load_split_s", "driver_peak_rss_mb", "store_peak_mb", "per_trial_mb", "trial_start_s", "run_s"):
        present = table[table[column].notna()] if column in table else table.iloc[:0]
        if not len(present):
            continue
        small, large = present.iloc[0], present.iloc[-1]
        a, b = float(small[column]), float(large[column])
        rows.append({"figure": column, "from_records": int(small["records"]), "to_records": int(large["records"]),
                     "smallest": a, "largest": b, "ratio": round(b / a, 2) if a else math.nan,
                     "records_ratio": round(float(large["records"]) / float(small["records"]), 1)})
    # What the data adds: per-trial memory grown between the sizes with trials, over the float32 bytes grown
    # (the fixed part, torch's allocator, the model, the optimiser, activations, cancels out).
    trained = table[table["per_trial_mb"].notna()] if "per_trial_mb" in table else table.iloc[:0]
    if len(trained) >= 2:
        small, large = trained.iloc[0], trained.iloc[-1]
        extra = float(large["per_trial_mb"]) - float(small["per_trial_mb"])
        grown_f32 = float(large["float32_train_val_mb"]) - float(small["float32_train_val_mb"])
        rows.append({"figure": "marginal per_trial_mb / float32 train+val MB", "from_records": int(small["records"]),
                     "to_records": int(large["records"]), "smallest": round(extra, 1), "largest": round(grown_f32, 1),
                     "ratio": round(extra / grown_f32, 3) if grown_f32 else math.nan, "records_ratio": math.nan})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table (pandas' to_markdown needs tabulate, which the project does not install)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_readme(out: Path, table: pd.DataFrame, grown: pd.DataFrame, command: str, load: tuple[float, ...]) -> None:
    largest = table.iloc[-1]
    trained = table[table["per_trial_over_float32"].notna()]
    at_largest = float(trained["per_trial_over_float32"].iloc[-1]) if len(trained) else math.nan
    marginal_rows = grown[grown["figure"].str.startswith("marginal")]
    marginal = float(marginal_rows["ratio"].iloc[0]) if len(marginal_rows) else math.nan
    verdicts = [
        f"- per-trial memory / one float32 copy of train+val, at the largest size with trials "
        f"({int(trained['records'].iloc[-1]) if len(trained) else 0:,} records): {at_largest:.2f}, the fixed part "
        f"(torch, model, optimiser: about {float(trained['per_trial_mb'].iloc[0]) if len(trained) else math.nan:.0f} "
        f"MiB) included; what the data adds, grown per float32 byte grown: {marginal:.2f} "
        f"(goal <= {GOALS['per_trial_over_float32']}): "
        f"{'not measured (one size with trials)' if math.isnan(marginal) else 'met' if marginal <= GOALS['per_trial_over_float32'] else 'MISSED'}",
        f"- object store at its peak / the trial data: {table['store_over_data'].max():.2f} at most (the data "
        f"once: ~1): {'met' if table['store_over_data'].max() <= GOALS['store_over_data'] else 'MISSED'}",
        f"- load+split warm at {int(largest['records']):,} records: {largest['load_split_s']:.2f} s "
        f"(goal <= {GOALS['load_split_20k_s']:g} s at 20k): "
        f"{'met' if largest['load_split_s'] <= GOALS['load_split_20k_s'] else 'MISSED'}",
    ]
    lines = [
        "# bench_scale: the pipeline at 1k, 5k and 20k records", "",
        "Commands (each row's is in scale.csv, `command`): " + "; ".join(
            f"`{c}`" for c in (table["command"].dropna().unique() if "command" in table else [command])), "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs shared with other jobs; "
        f"load average (1 min) at the end of each row's run: `load_avg_1min`. Synthetic records at "
        f"{FS} Hz x {LENGTH} samples, 8 leads, int16; GRU space, 2 concurrent 1-CPU trials of 1 epoch, FIFO, "
        "winner evaluated on test. Memory in MiB; worker columns list the two trial workers.", "",
        markdown(table.drop(columns=["command"], errors="ignore")), "",
        "Growth, largest size over smallest:", "",
        markdown(grown), "",
        *verdicts, "",
        "How each figure is measured: the docstring of bench/bench_scale.py. `per_trial_mb` = a trial worker's "
        "peak RSS - `worker_baseline_rss_mb` (a worker that imported the same modules, holding no data); the "
        "RSS includes the object-store pages the worker touched (`worker_peak_shmem_mb`), which are shared "
        "with the store and the other trial, not copies.", "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="1000,5000,20000", help="record counts, comma-separated")
    p.add_argument("--smoke", action="store_true", help="one size of 300 records, for CI")
    p.add_argument("--out", type=Path, default=None,
                   help="where scale.csv and README.md go (default bench/results/scale, bench/out/scale-smoke)")
    p.add_argument("--data-only-sizes", default="",
                   help="sizes measured only up to the object store (load, split, store): no trials")
    p.add_argument("--append", action="store_true",
                   help="merge into the rows already in <out>/scale.csv (a size measured again replaces its row)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild README.md and growth.csv from <out>/scale.csv without measuring")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, in a fresh process
    p.add_argument("--data-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.sizes = "300" if args.smoke else args.sizes
    args.out = args.out or ROOT / "bench" / ("out/scale-smoke" if args.smoke else "results/scale")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.one:
        print("SCALE " + json.dumps(one_size(args)), flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    if args.report_only:
        table = pd.read_csv(args.out / "scale.csv")
        grown = growth(table)
        grown.to_csv(args.out / "growth.csv", index=False)
        write_readme(args.out, table, grown, "", (math.nan, math.nan))
        print((args.out / "README.md").read_text())
        return
    previous = pd.read_csv(args.out / "scale.csv") if args.append and (args.out / "scale.csv").exists() else None
    rows = []
    plan = [(int(s), False) for s in args.sizes.split(",") if s] + \
           [(int(s), True) for s in args.data_only_sizes.split(",") if s]
    command = ("python bench/bench_scale.py " + shlex.join(argv)).strip()
    for n, only_data in plan:
        print(f"=== {n:,} records{' (data only)' if only_data else ''} ===", flush=True)
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", str(n),
                               *(["--data-only"] if only_data else [])], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("SCALE ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{n} records failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        rows.append({**json.loads(lines[-1][len("SCALE "):]), "command": command,
                     "load_avg_1min": round(os.getloadavg()[0], 1)})
        print(json.dumps(rows[-1], indent=1), flush=True)
        # Written after every size: a long size interrupted still leaves the others' figures.
        table = pd.DataFrame(rows)
        if previous is not None:
            table = pd.concat([previous[~previous["records"].isin(table["records"])], table], ignore_index=True)
        table = table.sort_values("records", kind="stable").reset_index(drop=True)
        grown = growth(table)
        table.to_csv(args.out / "scale.csv", index=False)
        grown.to_csv(args.out / "growth.csv", index=False)
        write_readme(args.out, table, grown, command, (load_start, os.getloadavg()[0]))
    print("\n" + (args.out / "README.md").read_text())


if __name__ == "__main__":
    main()
