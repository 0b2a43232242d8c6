"""The one error type of the data layer: bad input files, named with file and line or value.

Values are quoted in messages with `ecg.values.quote` (at most 80 characters, control characters escaped).
"""
from __future__ import annotations


class DataError(ValueError):
    """A data file or option is unusable; the message names the file and the line or value at fault."""
