"""`load_synthetic()`: a generated set is made once and then read back from the dataset cache.

Entries live under `$ECG_CACHE_DIR` (else `~/.cache/ecg-autosearch`), in the same format `ecg.data` uses for
parsed real data; the key is a hash of every generation option plus `GENERATOR_VERSION`, which is bumped
whenever the generator's output changes, so an old entry is never mistaken for a new one.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from ecg.data.cache import default_cache_dir, load_cached, store
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, ECGDataset
from ecg.synthetic.generate import generate

GENERATOR_VERSION = 1
DEFAULT_RECORDS = 2000  # a CPU search finishes in minutes on this many; use 20,000 for GPU runs


def cache_key(**options) -> str:
    """Entry name for a set generated with `options`."""
    text = json.dumps({"generator": "ecg.synthetic", "version": GENERATOR_VERSION, **options}, sort_keys=True)
    return "synthetic-" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def load_synthetic(n: int = DEFAULT_RECORDS, seed: int = 0, *, leads: Sequence[str] = HEFEI_LEADS,
                   balanced: bool = False, noise: float = 1.0, fs: int = FS, length: int = N_SAMPLES,
                   cache_dir: str | os.PathLike | None = None) -> ECGDataset:
    """The set `generate(n, seed, ...)` returns, generated on first use and cached (see module docstring)."""
    options = {"n": int(n), "seed": int(seed), "leads": list(leads), "balanced": bool(balanced),
               "noise": float(noise), "fs": int(fs), "length": int(length)}
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(**options)
    cached = load_cached(directory, key)
    if cached is not None:
        return cached
    dataset = generate(n, seed, leads=leads, balanced=balanced, noise=noise, fs=fs, length=length)
    store(directory, key, dataset)
    return dataset
