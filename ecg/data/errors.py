"""The one error type of the data layer: bad input files, named with file and line or value."""
from __future__ import annotations


class DataError(ValueError):
    """A data file or option is unusable; the message names the file and the line or value at fault."""
