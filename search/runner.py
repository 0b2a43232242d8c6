"""`run(options)`: one search from the data to the exported results (or its continuation with --resume)."""
from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from search import cluster, data as run_data, exports, faults, integrity, progress, runinfo, tuner as tuning
from search.options import OptionError, SearchOptions
from search.report import write_report_safely
from search.winners import evaluate_winners, evaluation_device, format_table

log = logging.getLogger(__name__)


class SearchInterrupted(RuntimeError):
    """The search stopped before every trial finished (Ctrl-C); what finished is exported."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        super().__init__(f"search interrupted; resume it with: {resume_command(run_dir)}")


def resume_command(run_dir: Path) -> str:
    path = Path(run_dir).resolve()
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return f"python launch.py --resume {shlex.quote(shown)}"


class SearchFailed(RuntimeError):
    """The search could not go on (the disk is full, trials that cannot be placed); what finished is exported
    and run.json says `failed` with the reason. The message is one line."""

    def __init__(self, run_dir: Path, reason: str) -> None:
        self.run_dir, self.reason = run_dir, reason
        super().__init__(f"{reason}; what finished is in {run_dir}")


def run(options: SearchOptions) -> Path:
    """Run (or, with `options.resume`, continue) a search; returns the run folder with every export in it.

    Raises OptionError (or the data's DataError) for bad input and for what the machine or cluster cannot give,
    before any trial starts and leaving no run folder behind; SearchInterrupted when the search was stopped
    before it finished; SearchFailed when it could not go on (disk full).
    """
    progress.setup_console(verbose=options.verbose)
    if options.resume is not None:
        return _resume(options)
    options.check_environment()
    started = time.time()
    dashboard, ray_start_s = None, 0.0
    try:
        if options.address is None:
            import torch

            options = options.resolved(torch.cuda.device_count())
        else:  # the cluster's GPUs decide the defaults
            ray_started = time.time()
            dashboard = cluster.start(options)
            ray_start_s = time.time() - ray_started
            cluster.check_capacity(options)
            options = options.resolved(cluster.gpu_capacity()[0])
        # The data before the run folder: a bad file is refused with nothing written (DataError, one line).
        dataset, source = run_data.load(options)
    except BaseException:
        cluster.stop()
        raise
    run_dir = runinfo.new_run_dir(options.results_dir, options.space)
    with _removed_unless_started(run_dir, options):
        split = run_data.split(dataset, seed=options.seed, split_csv=run_dir / "split.csv", source=source,
                               spec=run_data.data_spec(options))
        split = run_data.with_space_rates(split, options)
        info: dict[str, Any] = {
            "status": "running", "space": options.space, "seed": options.seed, "args": options.to_dict(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": runinfo.versions(),
            "git": runinfo.git_commit(),
            "data": {"source": source, "spec": run_data.data_spec(options).to_dict(),
                     "convention": options.convention(),  # task, split and metric: what results compare with
                     "fingerprint": split.fingerprint, "records": len(dataset),
                     "leads": dataset.n_leads, "samples": dataset.n_samples, "fs": dataset.fs,
                     "rates": sorted([split.fs, *split.others]),  # the data/fs the space samples, each resampled once
                     "classes": dataset.n_classes,
                     "split": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
                     "skipped_records": [{"record": r, "reason": why} for r, why in dataset.skipped.items()]},
            "experiment_path": str(tuning.experiment_path(options, run_dir)),
            "study": f"sqlite:///{(run_dir / tuning.STUDY_FILE).resolve()}",
        }
        runinfo.write(run_dir, info)
        if options.address is None:
            ray_started = time.time()
            dashboard = cluster.start(options)
            ray_start_s = time.time() - ray_started
            cluster.check_capacity(options)  # Ray's own count (cgroup limits, memory left for trials)
        info["hardware"] = runinfo.hardware()
        info["dashboard"] = dashboard
        info["ray_start_s"] = round(ray_start_s, 2)
        runinfo.write(run_dir, info)
        search_tuner = tuning.make_tuner(options, run_dir, split.trial_data, callbacks=_callbacks())
        integrity.record(run_dir, tuning.experiment_path(options, run_dir))  # tuner.pkl, written just now
    print(f"run folder: {run_dir}")
    print("\n".join(progress.watch_lines(dashboard, run_dir / tuning.STUDY_FILE, tuning.experiment_path(options, run_dir),
                                         joined=options.address is not None)))
    return _search_and_export(search_tuner, options, run_dir, split, info, started)


def _callbacks() -> list:
    """Ours, pickled with the tuner into tuner.pkl, so a resumed search has them too."""
    return [integrity.DigestRecorder(), cluster.PlacementWatchdog()]


@contextlib.contextmanager
def _removed_unless_started(run_dir: Path, options: SearchOptions) -> Iterator[None]:
    """A start that fails before the search runs (bad data, Ray cannot start, a cluster too small) leaves no
    run folder behind: remove what it created, and stop the Ray it started."""
    try:
        yield
    except BaseException:
        cluster.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        if options.storage_path is not None:
            shutil.rmtree(tuning.storage_root(options, run_dir), ignore_errors=True)
        raise


def _resume(requested: SearchOptions) -> Path:
    """Continue the run in `requested.resume`. Everything that can refuse does so before run.json changes; a
    complete run is reported and left as it is; a resume that fails later puts the previous status back."""
    run_dir = Path(requested.resume)
    info = runinfo.read_for_resume(run_dir)
    if info["status"] == "complete":
        print(f"{run_dir} is already complete (finished {info.get('updated', '?')}): nothing to resume; "
              f"its results are in {run_dir}")
        return run_dir
    try:
        options = SearchOptions.from_dict(info["args"])
        options.check_environment()
    except OptionError as err:
        raise OptionError(f"--resume {run_dir}: {err}") from None
    experiment = tuning.experiment_path(options, run_dir)
    if not experiment.exists():
        raise OptionError(f"--resume {run_dir}: the Ray experiment {experiment} is missing")
    if not requested.trust_run_folder:
        try:
            integrity.verify(run_dir, experiment)  # before Ray unpickles anything from the folder
        except integrity.IntegrityError as err:
            raise integrity.IntegrityError(f"--resume {run_dir}: {err}") from None
    started = time.time()
    dataset, source = run_data.load(options)
    split = run_data.split(dataset, seed=options.seed, split_csv=run_dir / "split.csv", source=source,
                               spec=run_data.data_spec(options))
    split = run_data.with_space_rates(split, options)
    if split.fingerprint != info["data"]["fingerprint"]:
        raise OptionError(f"--resume {run_dir}: the data changed since the run started "
                          f"(fingerprint {split.fingerprint} != {info['data']['fingerprint']})")
    previous = info["status"]
    print(f"resuming run folder: {run_dir}")
    try:
        dashboard = cluster.start(options)
        cluster.check_capacity(options)
        print("\n".join(progress.watch_lines(dashboard, run_dir / tuning.STUDY_FILE, experiment,
                                             joined=options.address is not None)))
        study_before = tuning.study_trial_count(run_dir)
        info.setdefault("resumes", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "study_trials": study_before,
                                               "from_status": previous})
        info["status"] = "running"
        runinfo.write(run_dir, info)
        search_tuner = tuning.restore_tuner(options, run_dir, split.trial_data)
        integrity.record(run_dir, experiment)
        return _search_and_export(search_tuner, options, run_dir, split, info, started)
    except (SearchInterrupted, SearchFailed):
        raise  # they wrote their own status
    except BaseException as err:
        if info["status"] == "running":
            info["status"] = previous
            info["resumes"][-1]["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            with contextlib.suppress(OSError):
                runinfo.write(run_dir, info)
        cluster.stop()
        raise


def _search_and_export(search_tuner: Any, options: SearchOptions, run_dir: Path, split: run_data.SplitData,
                       info: dict[str, Any], started: float) -> Path:
    fit_started = time.time()
    experiment = tuning.experiment_path(options, run_dir)
    failure: str | None = None
    try:
        with integrity.recording(run_dir, experiment):
            search_tuner.fit()
    except ValueError as err:
        if "dynamic value space" not in str(err) and "different distribution" not in str(err):
            raise
        # Optuna refuses a parameter whose choices differ from those the stored study recorded.
        raise OptionError(f"the search space {options.space!r} differs from the one this run's study was made "
                          f"with (a different code version?); resume with the commit in {run_dir / 'run.json'}") from err
    except cluster.TrialUnplaceable as err:
        failure = str(err)
    except OSError as err:  # the driver's own writes (Ray's experiment snapshot, our digests)
        if not faults.is_disk_full(err):
            raise
        failure = f"the disk is full ({err})"
    with contextlib.suppress(OSError):
        integrity.record(run_dir, experiment)  # the final snapshot (on a full disk, the last one that fitted)
    search_time = time.time() - started
    info["fit_time_s"] = round(time.time() - fit_started, 2)
    table = exports.read_trials(experiment)
    disk_full = [r for r in table.records if r.error and faults.DISK_FULL in r.error]
    if failure is None and disk_full:
        failure = (f"the disk is full: trial {disk_full[0].trial_id} failed with {disk_full[0].error!r}"
                   + (f" (and {len(disk_full) - 1} more trials)" if len(disk_full) > 1 else ""))
    finished = [r for r in table.records if r.status in ("TERMINATED", "ERROR")]
    complete = len(finished) >= options.num_samples and len(finished) == len(table.records)
    trials = exports.trials_frame(table, metric=options.metric, mode=options.metric_mode,
                                  max_epochs=options.max_epochs, scheduler=options.scheduler,
                                  max_failures=options.max_failures,
                                  optuna_numbers=exports.optuna_trial_numbers(run_dir / tuning.STUDY_FILE, table))
    ranked = [r for r in table.ranked(options.metric, options.metric_mode) if r.status == "TERMINATED"]
    info.update(search_time_s=round(search_time, 1), trials={s: int((trials["status"] == s).sum())
                                                             for s in sorted(set(trials["status"]))} if len(trials) else {},
                study_trials=tuning.study_trial_count(run_dir),
                search_constants=exports.search_constants(table, run_dir / tuning.STUDY_FILE))
    if failure is not None or not complete:
        # What finished, each file on its own: on a full disk one that does not fit must not stop the others.
        unwritten = _write_each({
            "trials.csv": lambda path: exports.write_csv(trials, path),
            "epochs.csv": lambda path: exports.write_csv(exports.epochs_frame(table), path),
            "best_configs.csv": lambda path: exports.write_csv(exports.best_configs_frame(
                ranked[:options.top_k], metric=options.metric, mode=options.metric_mode), path),
        }, run_dir)
        info["status"] = "interrupted" if failure is None else "failed"
        if failure is not None:
            info["failure"] = failure
        if unwritten:
            info["unwritten"] = unwritten
        with contextlib.suppress(OSError):
            runinfo.write(run_dir, info)
        write_report_safely(run_dir)
        cluster.stop()
        if failure is not None:
            raise SearchFailed(run_dir, failure)
        raise SearchInterrupted(run_dir)
    exports.write_csv(trials, run_dir / "trials.csv")
    exports.write_csv(exports.epochs_frame(table), run_dir / "epochs.csv")
    info["orphaned_study_trials_failed"] = tuning.fail_orphaned_trials(run_dir)
    faults.corrupt_checkpoints(table)  # test hook only; does nothing unless ECG_SEARCH_FAULT=corrupt@...
    results = evaluate_winners(ranked, split.val, split.test, top_k=options.top_k, metric=options.metric,
                               at_rate=split.at_rate,
                               mode=options.metric_mode, ensemble_candidates=options.ensemble_candidates,
                               device=evaluation_device(options.gpus_per_trial), seed=options.seed)
    exports.write_csv(exports.best_configs_frame(results.winners, metric=options.metric, mode=options.metric_mode),
                      run_dir / "best_configs.csv")
    exports.write_csv(results.test_results, run_dir / "test_results.csv")
    exports.write_csv(results.per_class, run_dir / "per_class.csv")
    if len(results.per_source):  # CinC 2021: the Challenge score per record source
        exports.write_csv(results.per_source, run_dir / "per_source.csv")
    print(f"\nTest results (every choice made on validation only):\n{format_table(results.test_results)}")
    info.pop("failure", None)  # a resumed run that had failed (disk full) and now completed
    info.pop("unwritten", None)
    info.update(status="complete", wall_time_s=round(time.time() - started, 1),
                winners=[r.trial_id for r in results.winners],
                skipped_winners=[{"trial_id": t, "reason": why} for t, why in results.skipped],
                chosen_model=results.chosen, evaluation_device=results.device)
    runinfo.write(run_dir, info)
    write_report_safely(run_dir)
    cluster.stop()
    print("\n" + "\n".join(progress.summary(info, trials)))
    print(f"results in {run_dir}")
    return run_dir


def _write_each(writers: dict[str, Callable[[Path], Any]], run_dir: Path) -> dict[str, str]:
    """Run every writer; the files that could not be written, with the reason (each is atomic: no half file)."""
    unwritten = {}
    for name, write in writers.items():
        try:
            write(run_dir / name)
        except OSError as err:
            unwritten[name] = str(err)
    return unwritten
