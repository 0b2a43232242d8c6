"""The search from `Tuner.fit` to its exports: the trials and epochs as CSV, the winners evaluated once on test,
run.json `complete` and the report; or, for a search stopped by a signal or unable to go on, what finished.

Ray Tune, Optuna and torch come in with this module (`search.runner` imports it while Ray starts); matplotlib
only with the report, at the end.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ecg.run_folder import (BEST_CONFIGS, EPOCHS, MODELS, PARETO, PER_CLASS, PER_SOURCE, TEST_PROBABILITIES,
                            TEST_RESULTS, TRIALS, RunFolder)
from search import budget, cluster, data as run_data, exports, integrity, pareto, progress, study, trial_failures
from search import tuner as tuning
from search.endings import SearchFailed, SearchInterrupted, interrupted_message, report_not_rebuilt, shown
from search.options import OptionError, SearchOptions
from search.signals import StopSignals
from search.placement import TrialUnplaceable
from search.winners import evaluate_winners, evaluation_device, format_table, model_manifest, ranked_trials


def search_and_export(search_tuner: Any, options: SearchOptions, folder: RunFolder, split: run_data.SplitData,
                       started: float, stop: StopSignals) -> Path:
    record = folder.record
    fit_started = record.fit_started = time.time()
    budget.start(options.time_budget, spent_before_s=record.budget_spent_s or 0.0)
    experiment = folder.experiment_dir(options.storage_path)
    outcome = Outcome(options, folder, experiment, stop, started)
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
    except TrialUnplaceable as err:
        failure = str(err)
    except KeyboardInterrupt:  # a second stop signal while Ray Tune was stopping: its last snapshot stands
        interrupted = True
    except OSError as err:  # the driver's own writes (Ray's experiment snapshot, our digests)
        if not trial_failures.is_disk_full(err):
            raise
        failure = f"the disk is full ({err})"
    record.fit_time_s = round(time.time() - fit_started, 2)
    budget.end()
    found = outcome.collect()
    disk_full = [r for r in found.table.records if r.error and trial_failures.DISK_FULL in r.error]
    if failure is None and disk_full:
        failure = (f"the disk is full: trial {disk_full[0].trial_id} failed with {disk_full[0].error!r}"
                   + (f" (and {len(disk_full) - 1} more trials)" if len(disk_full) > 1 else ""))
    finished = [r for r in found.table.records if r.status in ("TERMINATED", "ERROR")]
    budget_spent = budget.reached()  # Tune stopped every trial at the deadline: the search is done, not cut
    complete = (not interrupted and stop.received is None and (len(finished) >= options.num_samples or budget_spent)
                and len(finished) == len(found.table.records))
    if complete and budget_spent and len(finished) < options.num_samples:
        print(f"\nthe time budget of {options.time_budget:g} min is spent: {len(finished)} of --num-samples "
              f"{options.num_samples} trials ran", flush=True)
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
        _write_report(folder)
    else:
        print(report_not_rebuilt(folder.path, stop.name()))
    cluster.stop()
    if failure is not None:
        raise SearchFailed(folder.path, failure)
    raise SearchInterrupted(folder.path, stop.name(), stop.exit_code(), announced=True)


@dataclass
class Found:
    """The search's trials as Ray's experiment and the study hold them, and the frames made from them."""

    table: exports.TrialTable
    trials: pd.DataFrame
    ranked: list
    front: pd.DataFrame | None


class Outcome:
    """Reads what the search produced and writes it into the run folder, from the main thread or, when a stop
    signal's deadline passes (`search.signals`), from the watchdog thread: the first writer holds the lock."""

    def __init__(self, options: SearchOptions, folder: RunFolder, experiment: Path, stop: StopSignals,
                 started: float) -> None:
        self.options, self.folder, self.experiment, self.stop, self.started = options, folder, experiment, stop, started
        self._lock = threading.Lock()
        self._stopped_written = self._announced = False

    def collect(self) -> Found:
        options, folder = self.options, self.folder
        with contextlib.suppress(OSError):
            integrity.record(folder.path, self.experiment)  # the final snapshot (on a full disk, the last that fitted)
        table, view = exports.read_trials(self.experiment), study.read(folder)
        trials = exports.trials_frame(table, metric=options.metric, mode=options.metric_mode,
                                      max_epochs=options.max_epochs, scheduler=options.scheduler,
                                      optuna_numbers=view.trial_numbers(table),
                                      warm_starts=view.user_attr(tuning.WARM_START_ATTR),
                                      budget_stopped=budget.stopped_trials())
        # With --objectives the winners (and the ensemble's candidates) come from the front (search.winners).
        ranked = ranked_trials(table, trials, metric=options.metric, mode=options.metric_mode,
                               objectives=options.objectives)
        front = pareto.front(trials, pareto.objective_names(options.objectives, options.metric)) \
            if options.objectives else None
        record = folder.record
        record.search_time_s = round(time.time() - self.started, 1)
        if options.time_budget is not None:
            record.budget_spent_s = budget.spent_s()
        record.trials = {s: int((trials["status"] == s).sum()) for s in sorted(set(trials["status"]))} \
            if len(trials) else {}
        record.study_trials = view.count
        record.over_budget = int(sum(1 for r in table.records if r.over_budget))
        record.search_constants = exports.search_constants(table, view.sampled_names())
        return Found(table, trials, ranked, front)

    def write(self, found: Found, *, with_best_configs: bool) -> dict[str, str]:
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

    def write_stopped(self, found: Found, failure: str | None) -> None:
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


def _evaluate_and_finish(options: SearchOptions, folder: RunFolder, split: run_data.SplitData, found: Found,
                         started: float) -> Path:
    """Every trial has finished: the winners on test, the last exports, run.json `complete`, the report."""
    record = folder.record
    table, trials, ranked = found.table, found.trials, found.ranked
    stopped = budget.stopped_trials()
    study.end_budget_stopped(folder, {r.trial_id: r.values(options.trial_metric) for r in table.records
                                      if r.trial_id in stopped}, options.max_epochs)
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
    _write_report(folder)
    cluster.stop()
    print("\n" + "\n".join(progress.summary(record.to_dict(), trials)))
    print(f"results in {shown(folder.path)}")
    return folder.path


def _write_report(folder: RunFolder) -> None:
    from search.report import write_report_safely  # matplotlib: imported when the report is made, not at the start

    write_report_safely(folder)
