"""Parse many records into one preallocated array, on all cores, with worker processes."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from ecg.data.dataset import check_signals_fit
from ecg.data.errors import DataError

# Below this many records everything runs in this process: starting workers costs more than it saves.
PARALLEL_MIN_RECORDS = 64


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _parse_chunk(parse_one: Callable[[Any], np.ndarray], collect: bool,
                 items: Sequence[Any]) -> list[np.ndarray | str]:
    """Each item parsed; with `collect`, a bad record's DataError message in its place instead of raising."""
    if not collect:
        return [parse_one(item) for item in items]
    out: list[np.ndarray | str] = []
    for item in items:
        try:
            out.append(parse_one(item))
        except DataError as error:
            out.append(str(error))
    return out


def _run(parse_one: Callable[[Any], np.ndarray], items: Sequence[Any], shape: tuple[int, ...], dtype: type,
         workers: int | None, collect: bool) -> tuple[np.ndarray, dict[int, str]]:
    if len(shape) == 2:  # [leads, samples]: refused before allocating, not by a MemoryError minutes later
        check_signals_fit(len(items), shape[0], shape[1], "these records at this rate and length")
    out = np.empty((len(items), *shape), dtype=dtype)
    failures: dict[int, str] = {}

    def place(start: int, block: list[np.ndarray | str]) -> None:
        for offset, value in enumerate(block):
            if isinstance(value, str):
                failures[start + offset] = value
                out[start + offset] = 0
            else:
                out[start + offset] = value

    workers = workers or available_cores()
    if len(items) < PARALLEL_MIN_RECORDS or workers <= 1:
        place(0, _parse_chunk(parse_one, collect, items))
        return out, failures
    # Chunks of 16-256 records: few round trips, yet small enough to keep every core busy to the end.
    chunk = max(16, min(256, len(items) // (workers * 8)))
    starts = range(0, len(items), chunk)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(partial(_parse_chunk, parse_one, collect), list(items[s:s + chunk])) for s in starts]
        try:
            for start, future in zip(starts, futures):
                place(start, future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return out, failures


def parse_all(parse_one: Callable[[Any], np.ndarray], items: Sequence[Any], shape: tuple[int, ...],
              dtype: type = np.int16, workers: int | None = None) -> np.ndarray:
    """`[len(items), *shape]` array whose row i is `parse_one(items[i])`; `parse_one` must be picklable
    (a module-level function or a functools.partial of one). The first error raised by a worker propagates."""
    return _run(parse_one, items, shape, dtype, workers, collect=False)[0]


def parse_each(parse_one: Callable[[Any], np.ndarray], items: Sequence[Any], shape: tuple[int, ...],
               dtype: type = np.int16, workers: int | None = None) -> tuple[np.ndarray, dict[int, str]]:
    """Like `parse_all`, but a record whose parse raises `DataError` does not stop the others: the array
    (its row zeros) and `{item index: the one-line reason}` of every such record. Other exceptions propagate."""
    return _run(parse_one, items, shape, dtype, workers, collect=True)
