"""A/B of the Hefei record parse before and after the values-per-row check (issue 12, item 2), one core.

    python bench/results/data/ab_row_check.py

"before" is `parse_record` of commit 6c52742 (read from git), "after" the current one. Per file the two
alternate, each timed 15 times; a file's best time is kept, so the load of a shared machine mostly drops out.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_data import write_records  # noqa: E402
from ecg.data.hefei import parse_record as after  # noqa: E402

BEFORE_COMMIT = "6c52742"
REPEATS = 15


def parse_record_before(folder: Path):
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:ecg/data/hefei.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = folder / "hefei_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("hefei_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hefei_before"] = module
    spec.loader.exec_module(module)
    return module.parse_record


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        before = parse_record_before(Path(tmp))
        write_records(Path(tmp) / "h", 300)
        paths = sorted((Path(tmp) / "h" / "bench_train").glob("*.txt"))
        best = {"before": np.full(len(paths), np.inf), "after": np.full(len(paths), np.inf)}
        for i, path in enumerate(paths):
            assert np.array_equal(before(path), after(path))
            for _ in range(REPEATS):
                for name, parse in (("before", before), ("after", after)):
                    start = time.perf_counter()
                    parse(path)
                    best[name][i] = min(best[name][i], time.perf_counter() - start)
        print(f"load average {os.getloadavg()[0]:.1f}; one core; {len(paths)} files, each its best of {REPEATS}")
        for name, seconds in best.items():
            print(f"  {name:6s} {len(paths) / seconds.sum():6.0f} records/s ({seconds.mean() * 1e3:.2f} ms a record)")


if __name__ == "__main__":
    main()
