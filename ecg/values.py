"""Values from files and command lines: quoted safely in a message, converted to their type, checked in range.

The one place that says what a good value of each kind is. Every reader and option calls these:

- `quote`: a value as an error message shows it (at most `QUOTE_CHARS` characters, control characters escaped,
  so a record's ESC or BEL bytes never reach the terminal raw); `printable` makes a whole message safe;
- `convert` (`to_bool`, `to_int`, `to_float`): a config travels as a flat row (trials.csv, best_configs.csv,
  config.csv): numbers come back as numpy scalars, integers in a column with gaps as floats, booleans as
  "True"/"False" or 0/1. The model registry (model options, typed by their defaults) and `TrainConfig`
  (typed by its fields) both convert with `convert`; a float must be finite;
- `number`, `rate`, `age`, `seed`, `numeric_dtype`: a value of that kind or a ValueError whose message says
  what was expected and quotes what was found; the caller puts the file and line (or the option) in front.
"""
from __future__ import annotations

import math
from typing import Any, Callable

TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}
MISSING_WORDS = {"", "nan", "none", "na", "n/a", "unknown"}  # a cell that says "no value" (age, sex)

QUOTE_CHARS = 80  # a quoted value never floods the terminal (binary garbage given as a record)
# Ages in years. The readers refuse an age outside AGE_YEARS (a unit or coding error: days, months, a missing
# marker such as 999). Its top is above 120 because the Hefei round-2 label file, the project's own data,
# holds ages of 121, 122 and 124; ages above PLAUSIBLE_AGE_YEARS load and `ecg.inspect` reports them.
AGE_YEARS = (0.0, 125.0)
PLAUSIBLE_AGE_YEARS = (0.0, 120.0)
# Sampling rates in Hz a record may have: below 1 Hz or above 100 kHz is no ECG, and resampling such a record
# to the target rate would make an array thousands of times its size.
RATE_HZ = (1.0, 100_000.0)
SEED_MAX = 2**32 - 1  # NumPy's legacy RandomState (scikit-learn's splitters, Optuna's samplers) takes no more


def printable(text: str) -> str:
    """`text` with every non-printable character (ESC, BEL, NUL, line breaks, bidi overrides) escaped as
    Python writes it in a repr (`\\x1b`), so a message is one line and cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clip(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` made printable and cut to at most `limit` characters ('...' included where it was cut)."""
    text = printable(str(text))
    return text if len(text) <= limit else text[:max(limit - 3, 0)] + "..."


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """`value` as an error message quotes it: the repr of its text (quotes included, control characters
    escaped), at most `limit` characters in all."""
    return clip(repr(str(value)), limit)


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
    raise ValueError(f"must be true or false, got {quote(value)}")


def to_int(value: Any) -> int:
    value = plain(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be an integer, got {quote(value)}") from None
    if isinstance(value, bool) or not number.is_integer():
        raise ValueError(f"must be an integer, got {quote(value)}")
    if isinstance(value, str):
        try:  # exactly, not through a float: "18446744073709551617" keeps its last digit
            return int(value.strip())
        except ValueError:
            pass
    return int(number)


def to_float(value: Any) -> float:
    """A finite float: NaN and infinity are refused (no setting or option means them)."""
    value = plain(value)
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {quote(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"must be a number, got {quote(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {quote(value)}")
    return number


CONVERTERS = {bool: to_bool, int: to_int, float: to_float, str: lambda v: str(plain(v))}


def convert(value: Any, kind: type) -> Any:
    """`value` as a `kind` (bool, int, float or str); ValueError ("must be ...") when it is not one."""
    return CONVERTERS[kind](value) if kind in CONVERTERS else plain(value)


def _range_text(low: float | None, high: float | None, low_open: bool) -> str:
    if low is not None and high is not None and not low_open:
        return f"from {low:g} to {high:g}"
    if low is not None and high is not None:
        return f"above {low:g} and at most {high:g}"
    if low is not None:
        return f"above {low:g}" if low_open else f">= {low:g}"
    return f"<= {high:g}" if high is not None else "finite"


def number(value: Any, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           integer: bool = False) -> float:
    """`value` as a finite number within [low, high] (`low_open`: above `low`), an int with `integer`;
    ValueError "must be a number ..., got 'X'" otherwise."""
    kind = "an integer" if integer else "a number"
    where = _range_text(low, high, low_open)
    try:
        result = to_int(value) if integer else to_float(value)
    except ValueError:
        raise ValueError(f"must be {kind} {where}, got {quote(plain(value))}") from None
    if (low is not None and (result <= low if low_open else result < low)) or (high is not None and result > high):
        raise ValueError(f"must be {kind} {where}, got {quote(plain(value))}")
    return result


def is_missing_text(value: Any) -> bool:
    """A cell that holds no value: None, NaN, or text such as '', 'NaN', 'Unknown', 'NA'."""
    value = plain(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_WORDS


def _bounded(value: Any, bounds: tuple[float, float], message: Callable[[], str], integer: bool = False) -> float:
    """`number(value)` within `bounds`; ValueError with `message()` (the value's own kind of sentence) otherwise."""
    try:
        return number(value, low=bounds[0], high=bounds[1], integer=integer)
    except ValueError:
        raise ValueError(message()) from None


def age(value: Any) -> float:
    """Age in years within `AGE_YEARS`, or NaN when the cell holds none ('', 'NaN', 'Unknown');
    ValueError "age 'X' is not ..." for anything else (text, infinity, a negative or absurd number)."""
    if is_missing_text(value):
        return math.nan
    return _bounded(value, AGE_YEARS, lambda: f"age {quote(plain(value))} is not a number of years from "
                    f"{AGE_YEARS[0]:g} to {AGE_YEARS[1]:g} (leave the cell empty when it is unknown)")


def rate(value: Any, what: str = "sampling rate") -> float:
    """A sampling rate in Hz within `RATE_HZ`; ValueError "<what> 'X' is not ..." otherwise."""
    return _bounded(value, RATE_HZ, lambda: f"{what} {quote(plain(value))} is not a number of Hz from "
                    f"{RATE_HZ[0]:g} to {RATE_HZ[1]:g}")


def seed(value: Any, what: str = "seed") -> int:
    """A random seed: an integer from 0 to 2**32 - 1; ValueError "<what> must be ..." otherwise."""
    return int(_bounded(value, (0, SEED_MAX), lambda: f"{what} must be an integer from 0 to 2**32 - 1 ({SEED_MAX}), "
                        f"got {quote(plain(value))}", integer=True))


def numeric_dtype(dtype: Any, what: str, *, allow_bool: bool = False) -> None:
    """Refuse (ValueError naming `what`) an array dtype that is not integers or real floats (bool only with
    `allow_bool`): object, text, bytes, complex, dates."""
    import numpy as np

    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
            or (allow_bool and dtype == np.bool_)):
        raise ValueError(f"{what} has dtype {dtype}, expected numbers (integers or floats)")
