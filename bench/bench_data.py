"""Data-layer speed: first parse of Hefei text files (records/s, all cores) and cached load time, side by side.

    python bench/bench_data.py            # 3,000 generated records; also a real 20,000-record cache entry
    python bench/bench_data.py --smoke    # 200 records, seconds

Targets (issue 2, on the 2-core machine): first parse >= 300 records/s; cached load of 20,000 x 8 x 5,000
<= 3 s. Files are random integers written to a temporary folder (deleted at the end).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecg.data import HEFEI_LEADS, N_SAMPLES, ECGDataset, load_dataset  # noqa: E402
from ecg.data import cache  # noqa: E402
from ecg.data.hefei import _first_ragged_row, parse_record  # noqa: E402
from ecg.data.parallel import available_cores, parse_all  # noqa: E402

FULL_SIZE = 20_000
TEMPLATES = 32  # distinct random records; files cycle through them (writing text is slower than parsing it)


def write_records(folder: Path, n: int, seed: int = 0) -> None:
    """`n` Hefei record files plus a label file and class list, like hf_round2."""
    rng = np.random.default_rng(seed)
    header = " ".join(HEFEI_LEADS) + "\n"
    texts = []
    for _ in range(TEMPLATES):
        rows = rng.integers(-2000, 2000, (N_SAMPLES, len(HEFEI_LEADS)))
        texts.append(header + "\n".join(" ".join(map(str, row)) for row in rows.tolist()) + "\n")
    records = folder / "bench_train"
    records.mkdir(parents=True)
    classes = ["A", "B", "C"]
    lines = []
    for i in range(n):
        (records / f"{100000 + i}.txt").write_text(texts[i % TEMPLATES])
        lines.append(f"{100000 + i}.txt\t{30 + i % 50}\t{'MALE' if i % 2 else 'FEMALE'}\t{classes[i % 3]}\t\n")
    (folder / "bench_train.txt").write_text("".join(lines))
    (folder / "bench_arrythmia.txt").write_text("\n".join(classes) + "\n")


def timed(fn, repeats: int = 1):
    """Result and the best of `repeats` wall times (best-of damps the noise of a shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def full_cache_load(cache_dir: Path, template: ECGDataset) -> float:
    """Seconds to load a real 20,000 x 8 x 5,000 int16 cache entry (written first, 1.6 GB)."""
    reps = -(-FULL_SIZE // len(template))
    index = np.tile(np.arange(len(template)), reps)[:FULL_SIZE]
    big = template.subset(index)
    big.record_ids = [str(i) for i in range(FULL_SIZE)]
    big._fingerprint = "bench"  # skip hashing 1.6 GB: not what is measured
    cache.store(cache_dir, "full", big)
    del big
    loaded, seconds = timed(lambda: cache.load_cached(cache_dir, "full"), repeats=3)
    assert loaded is not None and loaded.signals.shape == (FULL_SIZE, 8, N_SAMPLES)
    return seconds


def row_check_cost(path: Path) -> tuple[float, float]:
    """ms per record of the values-per-row check and of numpy's text parse, on one file (best of 200)."""
    body = path.read_bytes().split(b"\n", 1)[1]
    _, check_s = timed(lambda: [_first_ragged_row(body, len(HEFEI_LEADS)) for _ in range(20)], repeats=10)
    _, parse_s = timed(lambda: [np.fromstring(body, dtype=np.int64, sep=" ") for _ in range(20)], repeats=10)
    return check_s / 20 * 1e3, parse_s / 20 * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="200 records, no full-size cache entry")
    parser.add_argument("--records", type=int, help="how many record files to generate (default 3000)")
    args = parser.parse_args()
    n = args.records or (200 if args.smoke else 3000)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        folder, cache_dir = Path(tmp) / "hefei", Path(tmp) / "cache"
        _, write_s = timed(lambda: write_records(folder, n))
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"wrote {n} Hefei record files in {write_s:.1f} s ({available_cores()} cores; load average {load}: "
              "other processes slow these figures)")
        first, first_s = timed(lambda: load_dataset(folder, cache_dir=cache_dir))
        _, parse_s = timed(lambda: load_dataset(folder, use_cache=False))
        paths = sorted((folder / "bench_train").glob("*.txt"))
        _, serial_s = timed(lambda: parse_all(parse_record, paths, (len(HEFEI_LEADS), N_SAMPLES), workers=1))
        second, cached_s = timed(lambda: load_dataset(folder, cache_dir=cache_dir), repeats=3)
        assert np.array_equal(first.signals, second.signals)
        scaled = cached_s * FULL_SIZE / n
        print()
        print(f"{'measure':<50} {'value':>12}   target")
        print(f"{'first parse, one core (reference)':<50} {n / serial_s:>8.0f} r/s")
        print(f"{f'first parse, all {available_cores()} cores (no cache)':<50} {n / parse_s:>8.0f} r/s   >= 300 r/s")
        print(f"{'first load incl. cache write + fingerprint':<50} {n / first_s:>8.0f} r/s")
        print(f"{f'cached load of {n} records (best of 3)':<50} {cached_s:>10.3f} s")
        print(f"{'cached load scaled to 20,000 records':<50} {scaled:>10.2f} s   <= 3 s")
        check_ms, text_ms = row_check_cost(paths[0])
        print(f"{'values-per-row check / numpy text parse, per record':<50} {check_ms:>5.2f} / {text_ms:.2f} ms")
        if not args.smoke:
            full_s = full_cache_load(cache_dir, first)
            print(f"{'cached load of a 20,000-record entry (best of 3)':<50} {full_s:>10.2f} s   <= 3 s "
                  "(page cache warm)")
        print(f"\nfirst parse vs cached load: {parse_s / cached_s:.0f}x faster from cache")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
