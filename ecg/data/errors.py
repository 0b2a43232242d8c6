"""The one error type of the data layer: bad input files, named with file and line or value."""
from __future__ import annotations

EXCERPT_CHARS = 80  # a quoted value never floods the terminal (binary garbage given as a record)


class DataError(ValueError):
    """A data file or option is unusable; the message names the file and the line or value at fault."""


def clip(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` cut to `limit` characters, with '...' when something was cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """`repr` of `value` as an error message quotes it: at most `limit` characters (escapes included)."""
    return clip(repr(str(value)), limit)
