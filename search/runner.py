"""`run(options)`: one search from the data to the exported results (or its continuation with --resume)."""
from __future__ import annotations

import contextlib
import logging
import shlex
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from search import cluster, data as run_data, exports, integrity, pareto, progress, runinfo, trial_failures, tuner as tuning
from search.options import OptionError, SearchOptions
from search.report import write_report_safely
from search.winners import evaluate_winners, evaluation_device, format_table, ranked_trials

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
    ray_session: tuple[str | None, float] | None = None
    try:
        if options.address is None:
            import torch

            options = options.resolved(torch.cuda.device_count())
        else:  # joining a cluster: its GPUs decide the defaults, so connect first
            ray_session = _start_ray(options)
            options = options.resolved(cluster.gpu_capacity()[0])
        # The data before the run folder and a local Ray: a bad file is refused at once, with nothing written.
        dataset, source = run_data.load(options)
        # Also before the run folder: a warm-start file whose values cannot be read is refused (one line).
        starts = tuning.warm_starts(options, dataset.fs, dataset.n_samples)
    except BaseException:
        cluster.stop()
        raise
    run_dir = runinfo.new_run_dir(options.results_dir, options.space)
    with _removed_unless_started(run_dir, options):
        spec = run_data.data_spec(options)
        def prepare() -> run_data.SplitData:
            made = run_data.split(dataset, seed=options.seed, split_csv=run_dir / "split.csv", source=source, spec=spec)
            return run_data.with_space_rates(made, options)

        if ray_session is None:  # a local Ray starts while the split is made (cluster.start_while)
            split, dashboard, ray_start_s = cluster.start_while(options, prepare)
            cluster.check_capacity(options)
        else:
            split, (dashboard, ray_start_s) = prepare(), ray_session
        record = runinfo.RunRecord(
            status="running", space=options.space, seed=options.seed, args=options.to_dict(),
            started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), versions=runinfo.versions(), git=runinfo.git_commit(),
            data={"source": source, "spec": spec.to_dict(),
                  "convention": options.convention(),  # task, split and metric: what results compare with
                  "fingerprint": split.fingerprint, "records": len(dataset),
                  "leads": dataset.n_leads, "samples": dataset.n_samples, "fs": dataset.fs,
                  "rates": sorted([split.fs, *split.others]),  # the data/fs the space samples, each resampled once
                  "classes": dataset.n_classes,
                  "split": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
                  "skipped_records": [{"record": r, "reason": why} for r, why in dataset.skipped.items()]},
            experiment_path=str(tuning.experiment_path(options, run_dir)),
            study=f"sqlite:///{(run_dir / tuning.STUDY_FILE).resolve()}",
            hardware=runinfo.hardware(), dashboard=dashboard, ray_start_s=round(ray_start_s, 2))
        runinfo.write(run_dir, record)
        search_tuner = tuning.make_tuner(options, run_dir, split.trial_data, callbacks=_callbacks(), starts=starts)
        integrity.record(run_dir, tuning.experiment_path(options, run_dir))  # tuner.pkl, written just now
    print(f"run folder: {run_dir}")
    print("\n".join(progress.watch_lines(dashboard, run_dir / tuning.STUDY_FILE, tuning.experiment_path(options, run_dir),
                                         joined=options.address is not None)))
    return _search_and_export(search_tuner, options, run_dir, split, record, started)


def _start_ray(options: SearchOptions) -> tuple[str | None, float]:
    """Start (or join) Ray and check that it can place a trial; the dashboard URL and the seconds it took."""
    ray_started = time.time()
    dashboard = cluster.start(options)
    ray_start_s = time.time() - ray_started
    cluster.check_capacity(options)  # Ray's own count (cgroup limits, memory left for trials, GPUs per node)
    return dashboard, ray_start_s


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
    record = runinfo.read_for_resume(run_dir)
    if record.status == "complete":
        print(f"{run_dir} is already complete (finished {record.updated or '?'}): nothing to resume; "
              f"its results are in {run_dir}")
        return run_dir
    try:
        options = SearchOptions.from_dict(record.args)
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
    if split.fingerprint != record.data.get("fingerprint"):
        raise OptionError(f"--resume {run_dir}: the data changed since the run started "
                          f"(fingerprint {split.fingerprint} != {record.data.get('fingerprint')})")
    previous = record.status
    print(f"resuming run folder: {run_dir}")
    try:
        dashboard = cluster.start(options)
        cluster.check_capacity(options)
        print("\n".join(progress.watch_lines(dashboard, run_dir / tuning.STUDY_FILE, experiment,
                                             joined=options.address is not None)))
        study_before = tuning.study_trial_count(run_dir)
        record.resumes.append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "study_trials": study_before,
                               "from_status": previous})
        record.status = "running"
        runinfo.write(run_dir, record)
        search_tuner = tuning.restore_tuner(options, run_dir, split.trial_data)
        integrity.record(run_dir, experiment)
        return _search_and_export(search_tuner, options, run_dir, split, record, started)
    except (SearchInterrupted, SearchFailed):
        raise  # they wrote their own status
    except BaseException as err:
        if record.status == "running":
            record.status = previous
            record.resumes[-1]["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            with contextlib.suppress(OSError):
                runinfo.write(run_dir, record)
        cluster.stop()
        raise


def _search_and_export(search_tuner: Any, options: SearchOptions, run_dir: Path, split: run_data.SplitData,
                       record: runinfo.RunRecord, started: float) -> Path:
    fit_started = record.fit_started = time.time()
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
        if not trial_failures.is_disk_full(err):
            raise
        failure = f"the disk is full ({err})"
    with contextlib.suppress(OSError):
        integrity.record(run_dir, experiment)  # the final snapshot (on a full disk, the last one that fitted)
    search_time = time.time() - started
    record.fit_time_s = round(time.time() - fit_started, 2)
    table = exports.read_trials(experiment)
    disk_full = [r for r in table.records if r.error and trial_failures.DISK_FULL in r.error]
    if failure is None and disk_full:
        failure = (f"the disk is full: trial {disk_full[0].trial_id} failed with {disk_full[0].error!r}"
                   + (f" (and {len(disk_full) - 1} more trials)" if len(disk_full) > 1 else ""))
    finished = [r for r in table.records if r.status in ("TERMINATED", "ERROR")]
    complete = len(finished) >= options.num_samples and len(finished) == len(table.records)
    trials = exports.trials_frame(table, metric=options.metric, mode=options.metric_mode,
                                  max_epochs=options.max_epochs, scheduler=options.scheduler,
                                  optuna_numbers=exports.optuna_trial_numbers(run_dir / tuning.STUDY_FILE, table),
                                  warm_starts=exports.study_user_attr(run_dir / tuning.STUDY_FILE,
                                                                      tuning.WARM_START_ATTR))
    # With --objectives the winners (and the ensemble's candidates) come from the front (search.winners).
    ranked = ranked_trials(table, trials, metric=options.metric, mode=options.metric_mode, objectives=options.objectives)
    front = pareto.front(trials, pareto.objective_names(options.objectives, options.metric)) \
        if options.objectives else None
    record.search_time_s = round(search_time, 1)
    record.trials = {s: int((trials["status"] == s).sum()) for s in sorted(set(trials["status"]))} if len(trials) else {}
    record.study_trials = tuning.study_trial_count(run_dir)
    record.over_budget = int(sum(1 for r in table.records if r.over_budget))
    record.search_constants = exports.search_constants(table, run_dir / tuning.STUDY_FILE)
    if failure is not None or not complete:
        # What finished, each file on its own: on a full disk one that does not fit must not stop the others.
        unwritten = _write_each({
            "trials.csv": lambda path: exports.write_csv(trials, path),
            "epochs.csv": lambda path: exports.write_csv(exports.epochs_frame(table), path),
            **({"pareto.csv": lambda path: exports.write_csv(front, path)} if front is not None else {}),
            "best_configs.csv": lambda path: exports.write_csv(exports.best_configs_frame(
                ranked[:options.top_k], metric=options.metric, mode=options.metric_mode), path),
        }, run_dir)
        record.status = "interrupted" if failure is None else "failed"
        record.failure = failure
        record.unwritten = unwritten or None
        with contextlib.suppress(OSError):
            runinfo.write(run_dir, record)
        write_report_safely(run_dir)
        cluster.stop()
        if failure is not None:
            raise SearchFailed(run_dir, failure)
        raise SearchInterrupted(run_dir)
    exports.write_csv(trials, run_dir / "trials.csv")
    exports.write_csv(exports.epochs_frame(table), run_dir / "epochs.csv")
    if front is not None:
        exports.write_csv(front, run_dir / "pareto.csv")
    record.orphaned_study_trials_failed = tuning.fail_orphaned_trials(run_dir)
    if trial_failures.faults_injected():  # the test hook only: ECG_SEARCH_FAULT=corrupt@...
        from search.faults import corrupt_checkpoints

        corrupt_checkpoints(table)
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
    record.failure = record.unwritten = None  # a resumed run that had failed (disk full) and now completed
    record.status, record.wall_time_s = "complete", round(time.time() - started, 1)
    record.winners = [r.trial_id for r in results.winners]
    record.skipped_winners = [{"trial_id": t, "reason": why} for t, why in results.skipped]
    record.chosen_model, record.evaluation_device = results.chosen, results.device
    runinfo.write(run_dir, record)
    write_report_safely(run_dir)
    cluster.stop()
    print("\n" + "\n".join(progress.summary(record.to_dict(), trials)))
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
