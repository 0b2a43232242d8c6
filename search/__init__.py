"""Ray Tune + Optuna orchestration: the only package that imports ray.

    from search import SearchOptions, run
    run_dir = run(SearchOptions(space="ecgnet"))      # results/ecgnet-<timestamp>/

The names are loaded on first use (PEP 562), so `import search.options` (what `launch.py --help` and a
refused value need) does not import ray, torch or the trainable (their import time: bench/results/imports).
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"OptionError": "search.options", "SearchOptions": "search.options", "SearchFailed": "search.runner",
          "SearchInterrupted": "search.runner", "resume_command": "search.runner", "run": "search.runner"}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_NAMES[name]), name)
