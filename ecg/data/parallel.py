"""Parse many records into one preallocated array, on all cores, with worker processes."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import numpy as np

# Below this many records everything runs in this process: starting workers costs more than it saves.
PARALLEL_MIN_RECORDS = 64


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _parse_chunk(parse_one: Callable[[Any], np.ndarray], items: Sequence[Any]) -> np.ndarray:
    return np.stack([parse_one(item) for item in items])


def parse_all(parse_one: Callable[[Any], np.ndarray], items: Sequence[Any], shape: tuple[int, ...],
              dtype: type = np.int16, workers: int | None = None) -> np.ndarray:
    """`[len(items), *shape]` array whose row i is `parse_one(items[i])`; `parse_one` must be picklable
    (a module-level function or a functools.partial of one). The first error raised by a worker propagates."""
    out = np.empty((len(items), *shape), dtype=dtype)
    workers = workers or available_cores()
    if len(items) < PARALLEL_MIN_RECORDS or workers <= 1:
        for i, item in enumerate(items):
            out[i] = parse_one(item)
        return out
    # Chunks of 16-256 records: few round trips, yet small enough to keep every core busy to the end.
    chunk = max(16, min(256, len(items) // (workers * 8)))
    starts = range(0, len(items), chunk)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(partial(_parse_chunk, parse_one), list(items[s:s + chunk])) for s in starts]
        try:
            for start, future in zip(starts, futures):
                block = future.result()
                out[start:start + len(block)] = block
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return out
