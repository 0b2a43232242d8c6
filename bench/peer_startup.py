"""Time from `python launch.py` to its first reported epoch (bench_peer.py --startup).

One launch: `launch.py --space gru` with its CPU defaults (the synthetic set, already in the data cache, as on a
second run), polled every 50 ms for the first trial's `result.json` with a line in it: the moment Ray Tune's
driver has the trial's first epoch, as the user's console and the dashboard see it. Then Ctrl-C (SIGINT), as a
user stops a search, and the next repeat. `ray_start_s` is run.json's (the seconds `ray.init` took, overlapped
or not with the data's load); `load_avg` is the 1-minute load average just before the launch.

With `--compare-root DIR` (another checkout, e.g. `git worktree add DIR <commit>`; may be repeated), each
repeat launches that checkout's launch.py too, in turns that rotate, so a change is measured side by side with
what it replaced, under the same conditions.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["repeat", "first_epoch_s", "ray_start_s", "load_avg"]


def first_result(results_dir: Path) -> bool:
    """Whether any trial of the search under `results_dir` has reported an epoch (a non-empty result.json)."""
    return any(path.stat().st_size > 0 for path in results_dir.glob("*/tune/*/result.json"))


def stop_launch(proc: subprocess.Popen) -> None:
    """Stop a launch.py started in a session of its own as Ctrl-C would, its whole group killed if it has not
    ended 120 s later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def launch_once(root: Path, space: str = "gru", timeout_s: float = 300.0,
                extra: tuple[str, ...] = ()) -> dict[str, float]:
    """Launch `root`'s launch.py once; seconds to its first reported epoch and run.json's ray_start_s."""
    work = Path(tempfile.mkdtemp(prefix="peer-startup-"))
    load = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(root)}  # that checkout's code, whatever the venv's editable install says
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(root / "launch.py"), "--space", space, "--num-samples", "1000",
                             "--results-dir", str(work), *extra], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = float("nan")
    try:
        while time.perf_counter() - started < timeout_s and proc.poll() is None:
            if first_result(work):
                first = time.perf_counter() - started
                break
            time.sleep(0.05)
    finally:
        stop_launch(proc)
    runs = list(work.glob("*/run.json"))
    ray_start = json.loads(runs[0].read_text()).get("ray_start_s", float("nan")) if runs else float("nan")
    shutil.rmtree(work, ignore_errors=True)
    return {"first_epoch_s": round(first, 2), "ray_start_s": ray_start, "load_avg": round(load, 2)}


def warm_cache(root: Path, space: str) -> None:
    """One launch not counted: it fills the data cache (and the OS's file cache) as a first run would."""
    launch_once(root, space)


def measure(repeats: int, *, space: str = "gru", compare: tuple[Path, ...] = (), pause_s: float = 3.0,
            ) -> dict[str, pd.DataFrame]:
    """`repeats` launches of this checkout and of each `compare` checkout, in turns that rotate each repeat;
    one table (COLUMNS) per checkout, "this" for this one and the folder's path for the others."""
    roots = [ROOT, *compare]
    for root in roots:
        warm_cache(root, space)
    rows: dict[Path, list[dict[str, float]]] = {root: [] for root in roots}
    for repeat in range(repeats):
        # Rotate who goes first, so none always follows the same one's shutdown.
        for root in roots[repeat % len(roots):] + roots[:repeat % len(roots)]:
            time.sleep(pause_s)  # the previous Ray's processes gone
            row = launch_once(root, space)
            rows[root].append({"repeat": repeat, **row})
            print(f"{'this' if root == ROOT else root} repeat {repeat}: first epoch {row['first_epoch_s']:.2f} s, "
                  f"Ray start {row['ray_start_s']} s, load {row['load_avg']:.2f}", flush=True)
    return {("this" if root == ROOT else str(root)): pd.DataFrame(rows[root], columns=COLUMNS) for root in roots}
