"""`run(options)`: one search from the data to the exported results (or its continuation with --resume).

The run folder (`ecg.run_folder.RunFolder`) is locked by this process from the moment it exists (or from
`--resume`) to the end: a second writer is refused. SIGTERM and SIGHUP stop the search as Ctrl-C does
(`search.signals`): what finished is exported and run.json says `interrupted`.
"""
from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pandas as pd

from ecg.run_folder import (BEST_CONFIGS, ENDED_SILENTLY, EPOCHS, MODELS, PARETO, PER_CLASS, PER_SOURCE, SPLIT,
                            STUDY_FILE, TEST_PROBABILITIES, TEST_RESULTS, TRIALS, RunFolder, RunFolderError,
                            RunRecord, DataRecord)
from ecg.values import printable
from search import cluster, data as run_data, environment, exports, integrity, pareto, progress, runinfo, study, trial_failures
from search import tuner as tuning
from search.options import OptionError, ResolvedOptions, SearchOptions
from search.report import write_report_safely
from search.signals import StopSignals, starting_ray
from search.winners import evaluate_winners, evaluation_device, format_table, model_manifest, ranked_trials


T = TypeVar("T")


def shown(path: Path | str) -> str:
    """A path as printed: control characters in a folder's name escaped, so they cannot drive the terminal."""
    return printable(str(path))


class SearchInterrupted(RuntimeError):
    """The search stopped before every trial finished (Ctrl-C, SIGTERM, SIGHUP); what finished is exported."""

    def __init__(self, run_dir: Path, signal_name: str = "SIGINT", exit_code: int = 130, *,
                 announced: bool = False) -> None:
        self.run_dir, self.signal_name, self.exit_code = run_dir, signal_name, exit_code
        self.announced = announced  # `interrupted_message` printed already
        super().__init__(f"search interrupted ({signal_name}); resume it with: {resume_command(run_dir)}")


class StoppedBeforeSearch(RuntimeError):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) before the search began: a new run's folder was removed, a resumed
    run's status left as it was."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        self.signal_name, self.exit_code = signal_name, exit_code
        super().__init__(f"stopped by {signal_name} before the search began")


def resume_command(run_dir: Path) -> str:
    path = Path(run_dir).resolve()
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return f"python launch.py --resume {shlex.quote(shown)}"


def interrupted_message(signal_name: str, run_dir: Path) -> str:
    """What a stopped search tells its user: where what finished is, and the command that resumes it."""
    return (f"\nSearch interrupted ({signal_name}); what finished is in {shown(run_dir)}.\nResume with:\n  "
            f"{resume_command(run_dir)}")


def report_not_rebuilt(run_dir: Path, signal_name: str) -> str:
    return f"report not rebuilt after {signal_name} (python -m search.report {shlex.quote(str(run_dir))} rebuilds it)"


class SearchFailed(RuntimeError):
    """The search could not go on (the disk is full, trials that cannot be placed); what finished is exported
    and run.json says `failed` with the reason. The message is one line."""

    def __init__(self, run_dir: Path, reason: str) -> None:
        self.run_dir, self.reason = run_dir, reason
        super().__init__(f"{reason}; what finished is in {shown(run_dir)}")


def run(options: SearchOptions) -> Path:
    """Run (or, with `options.resume`, continue) a search; returns the run folder with every export in it.

    Raises OptionError (or the data's DataError, or RunFolderError) for bad input and for what the machine or
    cluster cannot give, before any trial starts and leaving no run folder behind; SearchInterrupted when the
    search was stopped before it finished; SearchFailed when it could not go on (disk full).
    """
    progress.setup_console(verbose=options.verbose)
    with StopSignals() as stop:
        try:
            if options.resume is not None:
                return _resume(options, stop)
            return _start(options, stop)
        except KeyboardInterrupt:  # before the search began (or a Ctrl-C that Ray Tune did not take)
            raise StoppedBeforeSearch(stop.name(), stop.exit_code()) from None


def _start(options: SearchOptions, stop: StopSignals) -> Path:
    environment.check(options)
    started = time.time()
    ray_session: tuple[str | None, float] | None = None
    try:
        if options.address is None:
            import torch

            options = options.resolved(torch.cuda.device_count())
        else:  # joining a cluster: its GPUs decide the defaults, so connect first
            ray_session = _start_ray(options, stop)[:2]
            options = options.resolved(cluster.gpu_capacity()[0])
        # The data before the run folder and a local Ray: a bad file is refused at once, with nothing written.
        dataset, source = run_data.load(options)
        # Also before the run folder: a warm-start file whose values cannot be read is refused (one line).
        starts = tuning.warm_starts(options, dataset.fs, dataset.n_samples)
        spec = run_data.data_spec(options)
        split = run_data.split(dataset, seed=options.seed, source=source, spec=spec, features=False)
        run_data.check_searchable(split)  # too few records to search and evaluate honestly: refused here
    except BaseException:
        cluster.stop()
        raise
    folder = RunFolder.create(options.results_dir, options.space)
    try:
        stop.on_deadline(lambda: _remove_unstarted(folder, stop))  # stopped, and stuck, before the search began
        with _removed_unless_started(folder, options):
            folder.write_with(SPLIT, split.save)

            def prepare() -> run_data.SplitData:  # the costly part of the data's preparation
                return run_data.with_space_rates(run_data.with_features(split, dataset), options)

            if ray_session is None:  # a local Ray starts while the features and the other rates are made
                dashboard, ray_start_s, split = _start_ray(options, stop, folder.path.name, prepare)
            else:
                (dashboard, ray_start_s), split = ray_session, prepare()
            record = RunRecord(
                status="running", space=options.space, seed=options.seed, args=options.to_dict(),
                started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), versions=runinfo.versions(),
                git=runinfo.git_commit(), data=_data_record(dataset, split, source, spec.to_dict(), options),
                location=str(folder.path.resolve()), experiment_path=_experiment_entry(folder, options),
                study=STUDY_FILE, study_name=folder.path.name,
                hardware=runinfo.hardware(), dashboard=dashboard, ray_start_s=round(ray_start_s, 2))
            folder.save(record)
            search_tuner = tuning.make_tuner(options, folder, split.trial_data, callbacks=_callbacks(), starts=starts)
            integrity.record(folder.path, folder.experiment_dir(options.storage_path))  # tuner.pkl, written just now
        print(f"run folder: {shown(folder.path)}")
        print("\n".join(progress.watch_lines(dashboard, folder.file(STUDY_FILE), folder.experiment_dir(options.storage_path),
                                             joined=options.address is not None)))
        return _search_and_export(search_tuner, options, folder, split, started, stop)
    finally:
        folder.unlock()  # .lock names a holder only while one holds it


def _data_record(dataset: Any, split: run_data.SplitData, source: str, spec: dict[str, Any],
                 options: SearchOptions) -> DataRecord:
    return DataRecord(source=source, spec=spec, convention=options.convention(), fingerprint=split.fingerprint,
                      records=len(dataset), leads=dataset.n_leads, samples=dataset.n_samples, fs=dataset.fs,
                      rates=sorted([split.fs, *split.others]), classes=dataset.n_classes, split=split.sizes(),
                      skipped_records=[{"record": r, "reason": why} for r, why in dataset.skipped.items()])


def _experiment_entry(folder: RunFolder, options: SearchOptions) -> str:
    """run.json's experiment_path: relative inside the folder, absolute on --storage-path."""
    experiment = folder.experiment_dir(options.storage_path)
    try:
        return experiment.relative_to(folder.path.resolve()).as_posix()
    except ValueError:
        return str(experiment)


def _start_ray(options: SearchOptions, stop: StopSignals, run: str | None = None,
               prepare: Callable[[], T] = lambda: None) -> tuple[str | None, float, T]:
    """Start (or join) Ray while `prepare()` runs in a thread (`cluster.start_while`: the costly part of the data's
    preparation), and check that Ray can place a trial: the dashboard URL, the seconds Ray's start took, and
    what `prepare` returned. `run` (the run folder's name) names the job in the dashboard."""
    ray_started = time.time()
    with starting_ray():
        prepared, dashboard, _ = cluster.start_while(options, prepare, job_name=run)
    stop.install()  # Ray's core worker has just put its own SIGTERM handler in place of ours
    ray_start_s = time.time() - ray_started
    cluster.check_capacity(options)  # Ray's own count (cgroup limits, memory left for trials, GPUs per node)
    return dashboard, ray_start_s, prepared


def _callbacks() -> list:
    """Ours, pickled with the tuner into tuner.pkl, so a resumed search has them too."""
    return [integrity.DigestRecorder(), cluster.PlacementWatchdog()]


@contextlib.contextmanager
def _removed_unless_started(folder: RunFolder, options: SearchOptions) -> Iterator[None]:
    """A start that fails before the search runs (Ray cannot start, a cluster too small, a signal) leaves no run
    folder behind: remove what it created, and stop the Ray it started."""
    try:
        yield
    except BaseException:
        cluster.stop()
        folder.unlock()
        shutil.rmtree(folder.path, ignore_errors=True)
        if options.storage_path is not None:
            shutil.rmtree(folder.experiment_dir(options.storage_path).parent, ignore_errors=True)
        raise


def _remove_unstarted(folder: RunFolder, stop: StopSignals) -> None:
    shutil.rmtree(folder.path, ignore_errors=True)
    print(f"\nlaunch.py: stopped by {stop.name()} before the search began; nothing of it was kept", file=sys.stderr)


def _resume(requested: SearchOptions, stop: StopSignals) -> Path:
    """Continue the run in `requested.resume`. Everything that can refuse does so before anything in the folder
    changes; a complete run is reported and left as it is; a resume that fails later puts the previous status
    back."""
    folder = _open_for_resume(requested.resume)
    record = folder.record
    if record.status == "complete":
        print(f"{shown(folder.path)} is already complete (finished {record.updated or '?'}): nothing to resume; "
              f"its results are in {folder.path}")
        return folder.path
    folder.lock()  # a search still running in the folder (or another --resume) is refused here, in one line
    try:
        return _resume_holding_the_lock(folder, requested, stop)
    finally:
        folder.unlock()  # .lock names a holder only while one holds it


def _resume_holding_the_lock(folder: RunFolder, requested: SearchOptions, stop: StopSignals) -> Path:
    record = folder.record
    previous = folder.status()  # after the lock: a run recorded `running` is now known to have ended silently
    if previous == ENDED_SILENTLY:
        print(f"{folder.path}: the last search in this folder was {ENDED_SILENTLY}")
    try:
        options = ResolvedOptions.from_dict(record.args)
        environment.check(options)
    except OptionError as err:
        raise OptionError(f"--resume {folder.path}: {err}") from None
    moved_from = folder.relocated_from()
    if moved_from is not None and options.storage_path is not None:
        raise OptionError(f"--resume {folder.path}: this run was made at {moved_from} and keeps its trials on "
                          f"--storage-path {options.storage_path}, outside the folder; resume it from "
                          f"{moved_from} (a moved or copied folder resumes in place only without --storage-path)")
    experiment = folder.experiment_dir(options.storage_path)
    if not experiment.exists():
        raise OptionError(f"--resume {folder.path}: the Ray experiment {experiment} is missing")
    if not requested.trust_run_folder:
        try:
            integrity.verify(folder.path, experiment)  # before Ray unpickles anything from the folder
        except integrity.IntegrityError as err:
            raise integrity.IntegrityError(f"--resume {folder.path}: {err}") from None
    started = time.time()
    dataset, source = run_data.load(options)
    split = run_data.with_space_rates(run_data.split(dataset, seed=options.seed, existing=folder.file(SPLIT),
                                                     source=source, spec=run_data.data_spec(options)), options)
    if split.fingerprint != record.data.fingerprint:
        raise OptionError(f"--resume {folder.path}: the data changed since the run started "
                          f"(fingerprint {split.fingerprint} != {record.data.fingerprint})")
    print(f"resuming run folder: {shown(folder.path)}" + (f" (moved or copied from {shown(moved_from)})" if moved_from else ""))
    previous_status = record.status
    try:
        dashboard, _, _ = _start_ray(options, stop, folder.path.name)
        print("\n".join(progress.watch_lines(dashboard, folder.file(STUDY_FILE), experiment,
                                             joined=options.address is not None)))
        record.resumes.append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "study_trials": study.read(folder).count,
                               "from_status": previous})
        if moved_from is not None:
            record.relocations.append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": moved_from,
                                       "to": str(folder.path.resolve())})
        record.location = str(folder.path.resolve())
        record.experiment_path = _experiment_entry(folder, options)
        record.status = "running"
        folder.save(record)
        search_tuner = tuning.restore_tuner(options, folder, split.trial_data)
        integrity.record(folder.path, experiment)
        return _search_and_export(search_tuner, options, folder, split, started, stop)
    except (SearchInterrupted, SearchFailed):
        raise  # they wrote their own status
    except BaseException as err:
        if record.status == "running":
            record.status = previous_status
            record.resumes[-1]["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            with contextlib.suppress(OSError):
                folder.save(record)
        cluster.stop()
        raise


def _open_for_resume(path: Path) -> RunFolder:
    """The run folder to resume with its run.json read (OptionError, one line, for one that is not usable)."""
    try:
        folder = RunFolder.open(path)
        folder.record  # noqa: B018 (read now: a cut or foreign run.json is refused before anything else)
    except RunFolderError as err:
        raise OptionError(f"--resume: {err}") from None
    return folder


def _search_and_export(search_tuner: Any, options: SearchOptions, folder: RunFolder, split: run_data.SplitData,
                       started: float, stop: StopSignals) -> Path:
    record = folder.record
    fit_started = record.fit_started = time.time()
    experiment = folder.experiment_dir(options.storage_path)
    outcome = _Outcome(options, folder, experiment, stop, started)
    stop.on_deadline(outcome.write_stopped_at_deadline)
    failure: str | None = None
    interrupted = False
    try:
        with stop.tune_fit(), integrity.recording(folder.path, experiment):
            search_tuner.fit()
    except ValueError as err:
        if "dynamic value space" not in str(err) and "different distribution" not in str(err):
            raise
        # Optuna refuses a parameter whose choices differ from those the stored study recorded.
        raise OptionError(f"the search space {options.space!r} differs from the one this run's study was made "
                          f"with (a different code version?); resume with the commit in {folder.file('run.json')}") \
            from err
    except cluster.TrialUnplaceable as err:
        failure = str(err)
    except KeyboardInterrupt:  # a second stop signal while Ray Tune was stopping: its last snapshot stands
        interrupted = True
    except OSError as err:  # the driver's own writes (Ray's experiment snapshot, our digests)
        if not trial_failures.is_disk_full(err):
            raise
        failure = f"the disk is full ({err})"
    record.fit_time_s = round(time.time() - fit_started, 2)
    found = outcome.collect()
    disk_full = [r for r in found.table.records if r.error and trial_failures.DISK_FULL in r.error]
    if failure is None and disk_full:
        failure = (f"the disk is full: trial {disk_full[0].trial_id} failed with {disk_full[0].error!r}"
                   + (f" (and {len(disk_full) - 1} more trials)" if len(disk_full) > 1 else ""))
    finished = [r for r in found.table.records if r.status in ("TERMINATED", "ERROR")]
    complete = (not interrupted and stop.received is None and len(finished) >= options.num_samples
                and len(finished) == len(found.table.records))
    if failure is None and complete:
        unwritten = outcome.write(found, with_best_configs=False)
        if not unwritten:
            try:
                return _evaluate_and_finish(options, folder, split, found, started)
            except KeyboardInterrupt:  # stopped while the winners were evaluated: the trials are all exported
                if folder.record.status == "complete":  # or after: the run is complete, only the report may lack
                    cluster.stop()
                    print(f"results in {shown(folder.path)}")
                    return folder.path
        else:
            failure = f"could not write {', '.join(f'{n} ({why})' for n, why in unwritten.items())}"
    outcome.write_stopped(found, failure)
    if failure is None:
        outcome.announce()  # now, not after the report: the deadline may end the process before that
    if stop.received in (None, signal.SIGINT) or failure is not None:  # Ctrl-C: the user waits for the report
        write_report_safely(folder)
    else:
        print(report_not_rebuilt(folder.path, stop.name()))
    cluster.stop()
    if failure is not None:
        raise SearchFailed(folder.path, failure)
    raise SearchInterrupted(folder.path, stop.name(), stop.exit_code(), announced=True)


@dataclass
class _Found:
    """The search's trials as Ray's experiment and the study hold them, and the frames made from them."""

    table: exports.TrialTable
    trials: pd.DataFrame
    ranked: list
    front: pd.DataFrame | None


class _Outcome:
    """Reads what the search produced and writes it into the run folder, from the main thread or, when a stop
    signal's deadline passes (`search.signals`), from the watchdog thread: the first writer holds the lock."""

    def __init__(self, options: SearchOptions, folder: RunFolder, experiment: Path, stop: StopSignals,
                 started: float) -> None:
        self.options, self.folder, self.experiment, self.stop, self.started = options, folder, experiment, stop, started
        self._lock = threading.Lock()
        self._stopped_written = self._announced = False

    def collect(self) -> _Found:
        options, folder = self.options, self.folder
        with contextlib.suppress(OSError):
            integrity.record(folder.path, self.experiment)  # the final snapshot (on a full disk, the last that fitted)
        table, view = exports.read_trials(self.experiment), study.read(folder)
        trials = exports.trials_frame(table, metric=options.metric, mode=options.metric_mode,
                                      max_epochs=options.max_epochs, scheduler=options.scheduler,
                                      optuna_numbers=view.trial_numbers(table),
                                      warm_starts=view.user_attr(tuning.WARM_START_ATTR))
        # With --objectives the winners (and the ensemble's candidates) come from the front (search.winners).
        ranked = ranked_trials(table, trials, metric=options.metric, mode=options.metric_mode,
                               objectives=options.objectives)
        front = pareto.front(trials, pareto.objective_names(options.objectives, options.metric)) \
            if options.objectives else None
        record = folder.record
        record.search_time_s = round(time.time() - self.started, 1)
        record.trials = {s: int((trials["status"] == s).sum()) for s in sorted(set(trials["status"]))} \
            if len(trials) else {}
        record.study_trials = view.count
        record.over_budget = int(sum(1 for r in table.records if r.over_budget))
        record.search_constants = exports.search_constants(table, view.sampled_names())
        return _Found(table, trials, ranked, front)

    def write(self, found: _Found, *, with_best_configs: bool) -> dict[str, str]:
        """trials.csv, epochs.csv (and pareto.csv), with the top-k of what finished as best_configs.csv when
        asked; each file on its own (on a full disk one that does not fit must not stop the others). The files
        that could not be written, with the reason (each is atomic: no half file)."""
        options = self.options
        files: dict[str, Callable[[], pd.DataFrame]] = {
            TRIALS: lambda: found.trials,
            EPOCHS: lambda: exports.epochs_frame(found.table),
            **({PARETO: lambda: found.front} if found.front is not None else {}),
            **({BEST_CONFIGS: lambda: exports.best_configs_frame(found.ranked[:options.top_k], metric=options.metric,
                                                                 mode=options.metric_mode)}
               if with_best_configs else {}),
        }
        unwritten = {}
        for name, frame in files.items():
            try:
                self.folder.write_csv(name, frame())
            except OSError as err:
                unwritten[name] = str(err)
        return unwritten

    def write_stopped(self, found: _Found, failure: str | None) -> None:
        """What finished of a search that stopped (a signal) or could not go on, then run.json."""
        with self._lock:
            if self._stopped_written:
                return
            if self.folder.record.status == "complete":  # a signal after every export was written changes nothing
                self._stopped_written = self._announced = True
                return
            unwritten = self.write(found, with_best_configs=True)
            record = self.folder.record
            record.status = "interrupted" if failure is None else "failed"
            record.failure = failure
            record.stopped_by = self.stop.name() if failure is None else None
            record.unwritten = unwritten or None
            with contextlib.suppress(OSError):
                self.folder.save(record)
            self._stopped_written = True

    def write_stopped_at_deadline(self) -> None:
        """The watchdog's action: Ray did not let the search stop in time; write what finished, from disk."""
        if not self._lock.acquire(timeout=self.stop.deadline_s / 2):
            return  # the main thread is writing it: the process ends once it has (or at the timeout)
        self._lock.release()
        if not self._stopped_written:
            print(f"\nRay did not stop within {self.stop.deadline_s:g} s of {self.stop.name()}: writing what finished "
                  "from the files on disk", flush=True)
            self.write_stopped(self.collect(), None)
            print(report_not_rebuilt(self.folder.path, self.stop.name()), flush=True)
        self.announce()

    def announce(self) -> None:
        """Where what finished is, and the command that resumes it; printed once, by whichever thread comes first."""
        with self._lock:
            if self._announced:
                return
            self._announced = True
        print(interrupted_message(self.stop.name(), self.folder.path), flush=True)


def _evaluate_and_finish(options: SearchOptions, folder: RunFolder, split: run_data.SplitData, found: _Found,
                         started: float) -> Path:
    """Every trial has finished: the winners on test, the last exports, run.json `complete`, the report."""
    record = folder.record
    table, trials, ranked = found.table, found.trials, found.ranked
    record.orphaned_study_trials_failed = study.fail_orphaned_trials(folder)
    if trial_failures.faults_injected():  # the test hook only: ECG_SEARCH_FAULT=corrupt@...
        from search.faults import corrupt_checkpoints

        corrupt_checkpoints(table)
    results = evaluate_winners(ranked, split.val, split.test, top_k=options.top_k, metric=options.metric,
                               at_rate=split.at_rate, mode=options.metric_mode,
                               ensemble_candidates=options.ensemble_candidates,
                               device=evaluation_device(options.gpus_per_trial), seed=options.seed)
    folder.write_csv(BEST_CONFIGS, exports.best_configs_frame(results.winners, metric=options.metric,
                                                              mode=options.metric_mode))
    folder.write_csv(TEST_RESULTS, results.test_results)
    folder.write_csv(PER_CLASS, results.per_class)
    folder.write_csv(TEST_PROBABILITIES, results.test_probabilities)  # the report's bootstrap intervals
    if len(results.per_source):  # CinC 2021: the Challenge score per record source
        folder.write_csv(PER_SOURCE, results.per_source)
    models = model_manifest(results, split, folder.experiment_dir(options.storage_path), record)
    if models is not None:  # what python -m ecg.predict applies
        folder.write_json(MODELS, models.to_dict())
    print(f"\nTest results (every choice made on validation only):\n{format_table(results.test_results)}")
    record.failure = record.unwritten = record.stopped_by = None  # a resumed run that had stopped, now complete
    record.status, record.wall_time_s = "complete", round(time.time() - started, 1)
    record.winners = [r.trial_id for r in results.winners]
    record.skipped_winners = [{"trial_id": t, "reason": why} for t, why in results.skipped]
    record.chosen_model, record.evaluation_device = results.chosen, results.device
    folder.save(record)
    write_report_safely(folder)
    cluster.stop()
    print("\n" + "\n".join(progress.summary(record.to_dict(), trials)))
    print(f"results in {shown(folder.path)}")
    return folder.path
