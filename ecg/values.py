"""Option values as CSV rows and JSON give them back, converted to the type they should have.

A config travels as a flat row (trials.csv, best_configs.csv, config.csv): numbers come back as numpy scalars,
integers in a column with gaps as floats, booleans as "True"/"False" or 0/1. The model registry (model options,
typed by their defaults) and `TrainConfig` (typed by its fields) both convert with `convert`.
"""
from __future__ import annotations

import math
from typing import Any

TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def is_missing(value: Any) -> bool:
    """None, NaN or an empty cell."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def to_bool(value: Any) -> bool:
    value = plain(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError(f"must be true or false, got {value!r}")


def to_int(value: Any) -> int:
    value = plain(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not number.is_integer():
        raise ValueError(f"must be an integer, got {value!r}")
    return int(number)


def to_float(value: Any) -> float:
    value = plain(value)
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, got {value!r}") from None


CONVERTERS = {bool: to_bool, int: to_int, float: to_float, str: lambda v: str(plain(v))}


def convert(value: Any, kind: type) -> Any:
    """`value` as a `kind` (bool, int, float or str); ValueError ("must be ...") when it is not one."""
    return CONVERTERS[kind](value) if kind in CONVERTERS else plain(value)
