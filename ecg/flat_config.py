"""A trial's config as one flat row: `family`, `data/fs`, `model/<option>`, `optim/<setting>`.

These are the names the search spaces sample, the columns trials.csv and best_configs.csv hold, and what
`ecg.train.config.TrialConfig` parses (`from_flat`, `from_csv`). This module is the vocabulary and the one CSV
reader of such rows; it imports neither torch nor pandas at import time, so the spaces and the command lines
stay cheap to load.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

FAMILY = "family"
FS_KEY = "data/fs"  # a trial's input rate: the spaces sample it, TrialConfig builds the model at it
MODEL, OPTIM, DATA = "model/", "optim/", "data/"
PREFIXES = (DATA, MODEL, OPTIM)


def is_config_key(name: str) -> bool:
    """Whether a column or key belongs to a trial's config (not a trial id, metric or cost)."""
    return name == FAMILY or name.startswith(PREFIXES)


def config_columns(columns: Iterable[str]) -> list[str]:
    """The config's columns among `columns` (a trials.csv or pareto.csv header), in their order."""
    return [c for c in columns if is_config_key(str(c))]


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Every row of a config CSV (best_configs.csv, trials.csv, config.csv) as the text its cells hold ("" for an
    empty cell): never unpickled, and each value is typed by whoever reads it. ValueError, one line naming the
    file, for one that cannot be read."""
    from ecg.data.files import read_text_csv

    table = read_text_csv(path, "config CSV")
    return [{str(key): str(value).strip() for key, value in row.items()} for row in table.to_dict("records")]
