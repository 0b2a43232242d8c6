"""Reading a data file: only a regular file is opened, and a file that cannot be read is a DataError naming it.

A FIFO named like a record would block its reader forever, a folder or a socket cannot be read, and a
dangling symlink or a symlink loop fails `stat`; each is one line naming the file and why, never an OSError.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ecg.data.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def check_regular(path: str | os.PathLike) -> None:
    """Refuse (DataError) what is not a regular file, or a symlink to one: read it, and it might never return."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
        raise DataError(f"{path}: {kind}, not a file that can be read")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; a DataError when it is not a regular file or cannot be read."""
    check_regular(path)
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def read_text_csv(path: str | os.PathLike, what: str) -> pd.DataFrame:
    """A CSV (a header line, then rows) with every cell as the text it holds ("" for an empty one), never a guessed
    type; DataError naming the file and `what` it should be ("split CSV", "config CSV") for one that cannot be read."""
    import pandas as pd

    from ecg.values import clip

    check_regular(path)  # a FIFO would block the read
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:  # pandas' parser and decoding errors are ValueErrors
        raise DataError(f"{path}: not a readable {what} ({clip(error)})") from None
