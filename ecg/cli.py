"""What every command line (launch.py, python -m ecg.train, python -m ecg.inspect) does with a refusal: one line
on stderr, `PROG: error: ...`, exit code 2, whatever the message holds (a reader's message may quote a bad
file's line; a value typed on the command line may hold control characters), so a terminal shows it as it is.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
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
