#!/usr/bin/env python
"""Search architectures and hyperparameters for multi-label ECG diagnosis (Ray Tune + Optuna + ASHA).

    python launch.py --space ecgnet                    # built-in synthetic data, sized for this machine
    python launch.py --space all --data ~/hf_round2 --gpus-per-trial 0.5
    python launch.py --space gru --address auto        # on a running Ray cluster
    python launch.py --resume results/ecgnet-20261125-101500

This file only parses and validates the arguments, then calls `search.run`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ecg.cli import Parser, add_options, refuse
from search.options import CPU_DEFAULTS, GPU_DEFAULTS, OptionError, SearchOptions


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" unless the help text already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return text if "default:" in text else super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    """One option per `SearchOptions` field with `option(...)` metadata (its help, choices and default), and
    --list-spaces."""
    from spaces import SPACES

    p = Parser(prog="launch.py", description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter)

    def describe(f: dataclasses.Field) -> str:
        text = f.metadata["help"].format(spaces=", ".join(SPACES), cpu=CPU_DEFAULTS, gpu=GPU_DEFAULTS)
        if f.metadata["hardware_default"]:
            text += (f" (default: {getattr(CPU_DEFAULTS, f.name)} without a GPU, {getattr(GPU_DEFAULTS, f.name)} "
                     "with GPUs)")
        return text

    add_options(p, SearchOptions, describe=describe, default=lambda f: f.default)
    p.add_argument("--list-spaces", action="store_true", help="print every space's parameters and ranges, and exit")
    return p


def list_spaces(gpu: bool) -> None:
    from spaces import SPACES, SpaceContext, describe

    defaults = GPU_DEFAULTS if gpu else CPU_DEFAULTS
    ctx = SpaceContext(gpu=gpu, length=defaults.length, max_epochs=defaults.max_epochs, fs=defaults.fs)
    print(f"Search spaces for this machine ({'GPU' if gpu else 'CPU'} sizes, {defaults.length} samples per record "
          f"at {defaults.fs} Hz; sample counts are drawn at that rate and scale with data/fs):")
    for name in SPACES:
        print(f"\n{name}")
        for param, ranges in describe(name, ctx):
            print(f"  {param:32s} {ranges}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list_spaces:
        from search.environment import local_gpu_count

        list_spaces(local_gpu_count() > 0)
        return 0
    values = {k: v for k, v in vars(args).items() if k != "list_spaces"}
    try:
        options = SearchOptions(**values)
        if options.trust_run_folder and options.resume is None:
            raise OptionError("--trust-run-folder only applies with --resume")
        if options.resume is None:
            from search.environment import check

            check(options)
        else:
            from ecg.run_folder import RunFolder, RunFolderError

            try:
                RunFolder.open(options.resume)
            except RunFolderError as err:
                raise OptionError(f"--resume: {err}") from None
    except OptionError as err:
        return refuse("launch.py", err)
    if options.address is not None and options.resume is None:
        from search.address import probe  # ray and grpc only: a bad --address is refused in seconds

        try:
            probe(options.address)
        except OptionError as err:
            return refuse("launch.py", err)
    # Ray Tune, torch and the data readers only from here, once the arguments are known to be good, so --help
    # and a refused value do not wait for their imports (bench/results/cli).
    from ecg.data.errors import DataError
    from ecg.run_folder import RunFolderError
    from search import runner
    from search.endings import SearchFailed, SearchInterrupted, StoppedBeforeSearch, interrupted_message

    try:
        runner.run(options)
    except (OptionError, DataError, RunFolderError) as err:  # bad data, a folder in use, what only the cluster can tell
        return refuse("launch.py", err)
    except SearchFailed as err:  # the disk filled up mid-search: one line, run.json says failed
        return refuse("launch.py", err, code=1)
    except SearchInterrupted as stop:
        if not stop.announced:
            print(interrupted_message(stop.signal_name, stop.run_dir), flush=True)
        return stop.exit_code
    except StoppedBeforeSearch as stop:
        print(f"\nlaunch.py: {stop}; nothing of it was kept", file=sys.stderr)
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
