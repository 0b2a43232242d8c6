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
import sys
from pathlib import Path

from search.options import CPU_DEFAULTS, GPU_DEFAULTS, METRICS, SAMPLERS, SCHEDULERS, OptionError, SearchOptions


def _hw(name: str) -> str:
    return f"default: {getattr(CPU_DEFAULTS, name)} without a GPU, {getattr(GPU_DEFAULTS, name)} with GPUs"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" unless the help text already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return text if "default:" in text else super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line ("launch.py: error: ...") and exit code 2, like every other refusal."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    from spaces import SPACES

    p = _Parser(
        prog="launch.py", description=__doc__.split("\n\n")[0],
        formatter_class=_HelpFormatter)
    p.add_argument("--space", default="ecgnet", help=f"search space: {', '.join(SPACES)}")
    p.add_argument("--data", type=Path, default=None,
                   help="records: a Hefei folder, a WFDB folder or an .npz (default: the built-in synthetic set, "
                        f"{CPU_DEFAULTS.fs} Hz x {CPU_DEFAULTS.length} samples without a GPU, "
                        f"{GPU_DEFAULTS.fs} Hz x {GPU_DEFAULTS.length} with one)")
    p.add_argument("--labels", type=Path, default=None, help="labels CSV for a WFDB folder (record, labels, age, sex)")
    p.add_argument("--skip-bad-records", action="store_true",
                   help="load the readable records when some cannot be read; run.json lists the others with the "
                        "reason (default: refuse, one line counting them)")
    from ecg.data.tasks import SPLITS, TASKS  # here, not at import: reading the task tables costs ~0.5 s

    p.add_argument("--task", choices=TASKS, default=None,
                   help="a benchmark's classes: PTB-XL's all, diagnostic, subdiagnostic, superdiagnostic, form, "
                        "rhythm; cinc2021 (26 scored diagnoses) or cinc2021+unscored (default: the data's own "
                        "labels; PTB-XL: all)")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="official (PTB-XL's strat_fold 1-8/9/10) or stratified 7:1:2 (default: official for "
                        "PTB-XL, else stratified)")
    p.add_argument("--leads", type=int, choices=(8, 12), default=8, help="the 8 leads I, II, V1-V6, or all 12")
    p.add_argument("--fs", type=int, default=None,
                   help="sampling rate every record is brought to, 10 s per record; PTB-XL reads records100/ at "
                        f"100 (default: 500 for --data, {CPU_DEFAULTS.fs} for the synthetic set without a GPU)")
    p.add_argument("--n-records", type=int, default=None, help=f"synthetic set size ({_hw('n_records')})")
    p.add_argument("--num-samples", type=int, default=None, help=f"trials to run ({_hw('num_samples')})")
    p.add_argument("--max-epochs", type=int, default=None, help=f"epochs per trial at most ({_hw('max_epochs')})")
    p.add_argument("--grace-period", type=int, default=None,
                   help=f"epochs before ASHA may stop a trial ({_hw('grace_period')})")
    p.add_argument("--reduction-factor", type=int, default=None,
                   help=f"ASHA keeps 1/this of the trials at each rung ({_hw('reduction_factor')})")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha", help="early stopping: ASHA, or none (fifo)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler")
    p.add_argument("--metric", choices=METRICS, default=None,
                   help="what the search optimises (default: the data's convention: val_macro_auc for PTB-XL, "
                        "val_challenge_score with --task cinc2021, else val_micro_f1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the sampler and training")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="Ray Tune's full console output (every trial's config, a table each step) and the "
                        "trials' own output (default: a compact status and one line per finished trial)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (its torch threads)")
    p.add_argument("--memory-per-trial", type=float, default=None, metavar="GIB",
                   help="RAM Ray reserves for each trial, in GiB (default: none reserved)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial, fractional to share a GPU (0.5: two trials per GPU) "
                        "(default: 1 when the machine has GPUs, else 0)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once at most (default: as many as the resources allow)")
    p.add_argument("--top-k", type=int, default=3, help="best trials evaluated on the test split (and ensembled)")
    p.add_argument("--ensemble-candidates", type=int, default=10,
                   help="best finished trials the greedy ensemble selection may draw from")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="where run folders are created")
    p.add_argument("--storage-path", type=Path, default=None,
                   help="trial results and checkpoints on storage every node shares (needed with --address "
                        "on more than one machine; default: inside the run folder)")
    p.add_argument("--address", default=None, help="join a running Ray cluster: auto or HOST:PORT "
                                                   "(default: start a local Ray instance)")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface the Ray dashboard listens on (0.0.0.0 exposes it: a warning is printed)")
    p.add_argument("--max-failures", type=int, default=2,
                   help="retries of a failing trial from its last checkpoint (-1: unlimited)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue an interrupted run (its other options come from RUN_DIR/run.json)")
    p.add_argument("--trust-run-folder", action="store_true",
                   help="with --resume: skip checking that this user's searches wrote the Ray state Ray will "
                        "unpickle (only for a folder from a source you trust; see README, Safe by default)")
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


def _refuse(err: BaseException, code: int = 2) -> int:
    """One line on stderr, whatever the message holds (a reader's message may quote a bad file's line)."""
    print(f"launch.py: error: {' '.join(str(err).split())}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list_spaces:
        import torch

        list_spaces(torch.cuda.device_count() > 0)
        return 0
    values = {k: v for k, v in vars(args).items() if k != "list_spaces"}
    try:
        options = SearchOptions(**values)
        if options.trust_run_folder and options.resume is None:
            raise OptionError("--trust-run-folder only applies with --resume")
        if options.resume is None:
            options.check_environment()
        elif not (options.resume / "run.json").is_file():
            raise OptionError(f"--resume {options.resume}: no run.json there (not a run folder)")
    except OptionError as err:
        return _refuse(err)
    if options.address is not None and options.resume is None:
        from search.address import probe  # ray and grpc only: a bad --address is refused in seconds

        try:
            probe(options.address)
        except OptionError as err:
            return _refuse(err)
    # Ray Tune, torch and the data readers only from here, once the arguments are known to be good: --help
    # and a refused value return in under a second instead of ~7 s of imports.
    from ecg.data.errors import DataError
    from search import runner

    try:
        runner.run(options)
    except (OptionError, DataError) as err:  # bad data, or what only the cluster can tell (GPUs per node)
        return _refuse(err)
    except runner.SearchFailed as err:  # the disk filled up mid-search: one line, run.json says failed
        return _refuse(err, code=1)
    except runner.SearchInterrupted as stop:
        print(f"\nSearch interrupted; what finished is in {stop.run_dir}.\nResume with:\n  "
              f"{runner.resume_command(stop.run_dir)}")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
