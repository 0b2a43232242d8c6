"""The driver's console, set up first (before the data is read): one-line warnings, and who prints what.

Apart from `search.progress` (which prints the search's status through a Ray Tune callback) so that it
does not import Ray Tune before Ray starts.
"""
from __future__ import annotations

import os
import warnings


def setup(verbose: bool) -> None:
    """The driver's console: one-line warnings; Optuna's per-trial INFO lines only with -v (Ray Tune's own
    output is set by RunConfig's `verbose`)."""
    import optuna

    install_warning_format()
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    if not verbose:
        # Ray Tune's newer console output prints its header and a final table even at verbose=0; the older
        # one, chosen by Ray's own switch, prints nothing at verbose=0, leaving the console to SearchProgress.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def install_warning_format() -> None:
    """Python warnings as one line, `warning: <message> (<category>)`, without the source line Python echoes
    by default (`assignment = make_split(...)` tells a user nothing)."""
    warnings.formatwarning = _format_warning  # type: ignore[assignment]


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    return f"warning: {message} ({category.__name__})\n"
