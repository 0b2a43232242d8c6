"""What every command line (launch.py, python -m ecg.train, python -m ecg.inspect) does with a refusal: one line
on stderr, `PROG: error: ...`, exit code 2, whatever the message holds (a reader's message may quote a bad
file's line; a value typed on the command line may hold control characters), so a terminal shows it as it is.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ecg.values import QUOTE_CHARS, printable, quote

_LONG_REPR = re.compile(r"'[^'\\]{%d,}'" % (QUOTE_CHARS - 1))  # a value argparse quoted in full


def one_line(message: object) -> str:
    """`message` on one line: line breaks and runs of blanks become one space, control characters escaped."""
    return printable(" ".join(str(message).split()))


def refuse(prog: str, message: object, code: int = 2) -> int:
    """Print `PROG: error: MESSAGE` as one line on stderr; returns `code` for the caller to exit with."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """argparse, with its refusals (unknown option, bad value) as one line and exit code 2 like every other
    refusal, without the usage text; a value it quotes is cut to `QUOTE_CHARS` characters."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        message = _LONG_REPR.sub(lambda match: quote(match.group()[1:-1]), message)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: Any = None) -> argparse.Namespace:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:  # argparse would print them as typed, control characters and all
            self.error(f"unrecognized arguments: {' '.join(quote(arg) for arg in extra)}")
        return parsed


# A field's annotation (a string, under `from __future__ import annotations`) -> the argparse type of its value.
_ARG_TYPES: dict[str, Callable[[str], Any]] = {"Path": Path, "int": int, "float": float, "str": str}


def add_options(group: Any, cls: type, *, describe: Callable[[dataclasses.Field], str] | None = None,
                default: Callable[[dataclasses.Field], Any] = lambda f: None) -> None:
    """One option per field of the dataclass `cls` that has `help` metadata: `--<name>` (or its `flag`), its type
    from the annotation (or the metadata's `type`), `choices`, `metavar` and `short` from the metadata, a bool as
    a switch. `describe(field)` writes the help text (default: the metadata's); `default(field)` the option's
    default (None: "not given", so a caller can tell what the user said). How launch.py derives its command line
    from `search.options.SearchOptions`, and python -m ecg.train its data options from `ecg.data.source.DataSpec`."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        text = describe(f) if describe is not None else meta["help"]
        flags = ([meta["short"]] if meta.get("short") else []) + [meta.get("flag", f"--{f.name.replace('_', '-')}")]
        kind = str(f.type).replace(" ", "").removesuffix("|None")
        if kind == "bool":
            group.add_argument(*flags, dest=f.name, action="store_true", help=text)
        else:
            group.add_argument(*flags, dest=f.name, type=meta.get("type") or _ARG_TYPES[kind], default=default(f),
                               choices=meta.get("choices"), metavar=meta.get("metavar"), help=text)
