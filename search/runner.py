"""`run(options)`: one search from the data to the exported results (or its continuation with --resume).

The run folder (`ecg.run_folder.RunFolder`) is locked by this process from the moment it exists (or from
`--resume`) to the end: a second writer is refused. SIGTERM and SIGHUP stop the search as Ctrl-C does
(`search.signals`): what finished is exported and run.json says `interrupted`.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ecg.run_folder import ENDED_SILENTLY, SPLIT, STUDY_FILE, DataRecord, RunFolder, RunFolderError, RunRecord
from search import cluster, console, data as run_data, environment, runinfo
from search.endings import SearchFailed, SearchInterrupted, StoppedBeforeSearch, shown
from search.options import OptionError, ResolvedOptions, SearchOptions
from search.signals import StopSignals, starting_ray
from spaces.warm_start import WarmStart, WarmStartError, resolve as resolve_warm_starts

# The rest of the search (`search.finish` and what it imports: Ray Tune, Optuna, torch) is imported in the
# thread that runs while Ray's processes start, instead of before them (bench/results/peer/startup_levers);
# nothing imported above imports it (tests/search/test_layout.py checks).
T = TypeVar("T")


def run(options: SearchOptions) -> Path:
    """Run (or, with `options.resume`, continue) a search; returns the run folder with every export in it.

    Raises OptionError (or the data's DataError, or RunFolderError) for bad input and for what the machine or
    cluster cannot give, before any trial starts and leaving no run folder behind; SearchInterrupted when the
    search was stopped before it finished; SearchFailed when it could not go on (disk full).
    """
    console.setup(verbose=options.verbose)
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
            options = options.resolved(environment.local_gpu_count())
        else:  # joining a cluster: its GPUs decide the defaults, so connect first
            ray_session = _start_ray(options, stop)[:2]
            options = options.resolved(cluster.gpu_capacity()[0])
        # The data before the run folder and a local Ray: a bad file is refused at once, with nothing written.
        dataset, source = run_data.load(options)
        # Also before the run folder: a warm-start file whose values cannot be read is refused (one line).
        starts = _warm_starts(options, dataset.fs, dataset.n_samples)
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

            def prepare() -> run_data.SplitData:  # while Ray starts, on the core its processes leave free
                from search import finish, study  # noqa: F401 (the rest of the search's imports: see the top)

                study.create_tables(folder)
                return run_data.with_space_rates(run_data.with_features(split, dataset), options)

            if ray_session is None:  # a local Ray starts while `prepare` runs
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
            from search import finish, integrity, progress, tuner as tuning  # imported while Ray started

            search_tuner = tuning.make_tuner(options, folder, split.trial_data, callbacks=_callbacks(), starts=starts)
            integrity.record(folder.path, folder.experiment_dir(options.storage_path))  # tuner.pkl, written just now
        print(f"run folder: {shown(folder.path)}")
        print("\n".join(progress.watch_lines(dashboard, folder.file(STUDY_FILE), folder.experiment_dir(options.storage_path),
                                             joined=options.address is not None)))
        return finish.search_and_export(search_tuner, options, folder, split, started, stop)
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


def _warm_starts(options: SearchOptions, fs: int, length: int) -> list[tuple[WarmStart, dict]]:
    """The --warm-start configs this run's space expresses (a line for each one left out); OptionError for a
    file whose values cannot be read."""
    if options.warm_start is None:
        return []
    try:
        kept, lines = resolve_warm_starts(options.warm_start, options.space, options.space_context(fs, length))
    except WarmStartError as err:
        raise OptionError(str(err)) from None
    print("\n".join(lines))
    return kept


def _callbacks() -> list:
    """Ours, pickled with the tuner into tuner.pkl, so a resumed search has them too."""
    from search import integrity, placement

    return [integrity.DigestRecorder(), placement.PlacementWatchdog()]


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
    from search import finish, integrity, progress, study, tuner as tuning  # a resume imports them before Ray

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
        return finish.search_and_export(search_tuner, options, folder, split, started, stop)
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


