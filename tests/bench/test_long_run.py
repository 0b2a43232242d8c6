"""bench/bench_long_run.py: its listing mode on small synthetic experiment folders, and its per-minute table on
hand-made samples (the --minutes mode's search is launch.py, run end to end by tests/search)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from bench_long_run import per_minute  # noqa: E402


def test_the_listing_mode_times_both_listings_finds_the_same_files_and_says_its_command(tmp_path) -> None:
    out = tmp_path / "long_run"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_long_run.py"), "--listing", "20", "200",
                          "--repeats", "1", "--out", str(out)], capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    table = pd.read_csv(out / "listing.csv")
    assert table["trial_folders"].tolist() == [20, 200]
    # Four experiment files plus each trial's params.pkl; the checkpoint folders hold none.
    assert table["state_files_after"].tolist() == [24, 204] and table["same_files"].all()
    assert (table[["walk_everything_s", "state_files_s", "record_add_s"]] > 0).all().all()
    assert table["command"].iloc[0] == "python bench/bench_long_run.py --listing 20 200 --repeats 1 --out " + str(out)
    assert not (tmp_path / ".config").exists()  # the bench's digest key lives in its own temporary folder


def test_per_minute_counts_the_trials_started_and_the_drivers_cpu_in_each_minute() -> None:
    samples = pd.DataFrame({"t_s": [0, 30, 60, 90, 120, 150],
                            "trial_folders": [0, 40, 90, 130, 150, 160],
                            "state_bytes": [0, 2**20, 3 * 2**20, 4 * 2**20, 5 * 2**20, 6 * 2**20],
                            "driver_cpu_s": [1.0, 10.0, 31.0, 50.0, 79.0, 90.0],
                            "load_avg": [1.0, 2.0, 2.5, 2.6, 2.7, 2.8]})
    table = per_minute(samples)
    assert table["minute"].tolist() == [1, 2]
    assert table["trials_per_min"].tolist() == [90.0, 60.0]  # 0 -> 90 in minute 1, 90 -> 150 in minute 2
    assert table["driver_cpu_per_s"].tolist() == [0.5, 0.8]  # (31 - 1) / 60, (79 - 31) / 60
    assert table["trials_at_end"].tolist() == [90, 150] and table["state_mb"].tolist() == [3.0, 5.0]
