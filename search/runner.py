"""`run(options)`: one search from the data to the exported results (or its continuation with --resume)."""
from __future__ import annotations

import logging
import os
import shlex
import time
from pathlib import Path
from typing import Any

from search import cluster, data as run_data, exports, faults, runinfo, tuner as tuning
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


def run(options: SearchOptions) -> Path:
    """Run (or, with `options.resume`, continue) a search; returns the run folder with every export in it.

    Raises OptionError for what the machine or cluster cannot give (before any trial starts) and
    SearchInterrupted when the search was stopped before it finished.
    """
    if options.resume is not None:
        return _resume(options.resume)
    options.check_environment()
    started = time.time()
    if options.address is None:
        import torch

        options = options.resolved(torch.cuda.device_count())
        run_dir = runinfo.new_run_dir(options.results_dir, options.space)
        dashboard, ray_start_s = None, 0.0
    else:
        ray_started = time.time()
        dashboard = cluster.start(options)
        ray_start_s = time.time() - ray_started
        cluster.check_capacity(options)
        options = options.resolved(cluster.gpu_capacity()[0])
        run_dir = runinfo.new_run_dir(options.results_dir, options.space)
    print(f"run folder: {run_dir}")
    dataset, source = run_data.load(options)
    split = run_data.split(dataset, seed=options.seed, split_csv=run_dir / "split.csv", source=source,
                               spec=run_data.data_spec(options))
    info: dict[str, Any] = {
        "status": "running", "space": options.space, "seed": options.seed, "args": options.to_dict(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": runinfo.versions(), "git": runinfo.git_commit(),
        "data": {"source": source, "spec": run_data.data_spec(options).to_dict(),
                     "convention": options.convention(),  # task, split and metric: what results compare with
                 "fingerprint": split.fingerprint, "records": len(dataset),
                 "leads": dataset.n_leads, "samples": dataset.n_samples, "fs": dataset.fs,
                 "classes": dataset.n_classes, "split": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
                 "skipped_records": [{"record": r, "reason": why} for r, why in dataset.skipped.items()]},
        "experiment_path": str(tuning.experiment_path(options, run_dir)),
        "study": f"sqlite:///{(run_dir / tuning.STUDY_FILE).resolve()}",
    }
    runinfo.write(run_dir, info)
    if options.address is None:
        ray_started = time.time()
        dashboard = cluster.start(options)
        ray_start_s = time.time() - ray_started
    if dashboard:
        print(f"Ray dashboard: {dashboard}")
    info["hardware"] = runinfo.hardware()
    info["dashboard"] = dashboard
    info["ray_start_s"] = round(ray_start_s, 2)
    runinfo.write(run_dir, info)
    search_tuner = tuning.make_tuner(options, run_dir, split.trial_data)
    return _search_and_export(search_tuner, options, run_dir, split, info, started)


def _resume(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / runinfo.RUN_FILE).is_file():
        raise OptionError(f"--resume {run_dir}: no {runinfo.RUN_FILE} there (not a run folder)")
    info = runinfo.read(run_dir)
    options = SearchOptions.from_dict(info["args"])
    if not tuning.experiment_path(options, run_dir).exists():
        raise OptionError(f"--resume {run_dir}: the Ray experiment {tuning.experiment_path(options, run_dir)} is missing")
    started = time.time()
    print(f"resuming run folder: {run_dir}")
    dataset, source = run_data.load(options)
    split = run_data.split(dataset, seed=options.seed, split_csv=run_dir / "split.csv", source=source,
                               spec=run_data.data_spec(options))
    if split.fingerprint != info["data"]["fingerprint"]:
        raise OptionError(f"--resume {run_dir}: the data changed since the run started "
                          f"(fingerprint {split.fingerprint} != {info['data']['fingerprint']})")
    dashboard = cluster.start(options)
    if dashboard:
        print(f"Ray dashboard: {dashboard}")
    study_before = tuning.study_trial_count(run_dir)
    info.setdefault("resumes", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "study_trials": study_before})
    info["status"] = "running"
    runinfo.write(run_dir, info)
    search_tuner = tuning.restore_tuner(options, run_dir, split.trial_data)
    return _search_and_export(search_tuner, options, run_dir, split, info, started)


def _search_and_export(search_tuner: Any, options: SearchOptions, run_dir: Path, split: run_data.SplitData,
                       info: dict[str, Any], started: float) -> Path:
    fit_started = time.time()
    try:
        search_tuner.fit()
    except ValueError as err:
        if "dynamic value space" not in str(err) and "different distribution" not in str(err):
            raise
        # Optuna refuses a parameter whose choices differ from those the stored study recorded.
        raise OptionError(f"the search space {options.space!r} differs from the one this run's study was made "
                          f"with (a different code version?); resume with the commit in {run_dir / 'run.json'}") from err
    search_time = time.time() - started
    info["fit_time_s"] = round(time.time() - fit_started, 2)
    table = exports.read_trials(tuning.experiment_path(options, run_dir))
    finished = [r for r in table.records if r.status in ("TERMINATED", "ERROR")]
    complete = len(finished) >= options.num_samples and len(finished) == len(table.records)
    trials = exports.trials_frame(table, metric=options.metric, mode=options.metric_mode,
                                  max_epochs=options.max_epochs, scheduler=options.scheduler,
                                  max_failures=options.max_failures,
                                  optuna_numbers=exports.optuna_trial_numbers(run_dir / tuning.STUDY_FILE, table))
    exports.write_csv(trials, run_dir / "trials.csv")
    exports.write_csv(exports.epochs_frame(table), run_dir / "epochs.csv")
    ranked = [r for r in table.ranked(options.metric, options.metric_mode) if r.status == "TERMINATED"]
    info.update(search_time_s=round(search_time, 1), trials={s: int((trials["status"] == s).sum())
                                                             for s in sorted(set(trials["status"]))} if len(trials) else {},
                study_trials=tuning.study_trial_count(run_dir),
                search_constants=exports.search_constants(table, run_dir / tuning.STUDY_FILE))
    if not complete:
        exports.write_csv(exports.best_configs_frame(ranked[:options.top_k], metric=options.metric,
                                                     mode=options.metric_mode), run_dir / "best_configs.csv")
        info["status"] = "interrupted"
        runinfo.write(run_dir, info)
        write_report_safely(run_dir)
        cluster.stop()
        raise SearchInterrupted(run_dir)
    info["orphaned_study_trials_failed"] = tuning.fail_orphaned_trials(run_dir)
    faults.corrupt_checkpoints(table)  # test hook only; does nothing unless ECG_SEARCH_FAULT=corrupt@...
    results = evaluate_winners(ranked, split.val, split.test, top_k=options.top_k, metric=options.metric,
                               mode=options.metric_mode, ensemble_candidates=options.ensemble_candidates,
                               device=evaluation_device(options.gpus_per_trial), seed=options.seed)
    exports.write_csv(exports.best_configs_frame(results.winners, metric=options.metric, mode=options.metric_mode),
                      run_dir / "best_configs.csv")
    exports.write_csv(results.test_results, run_dir / "test_results.csv")
    exports.write_csv(results.per_class, run_dir / "per_class.csv")
    if len(results.per_source):  # CinC 2021: the Challenge score per record source
        exports.write_csv(results.per_source, run_dir / "per_source.csv")
    print(f"\nTest results (every choice made on validation only):\n{format_table(results.test_results)}")
    info.update(status="complete", wall_time_s=round(time.time() - started, 1),
                winners=[r.trial_id for r in results.winners],
                skipped_winners=[{"trial_id": t, "reason": why} for t, why in results.skipped],
                chosen_model=results.chosen, evaluation_device=results.device)
    runinfo.write(run_dir, info)
    write_report_safely(run_dir)
    cluster.stop()
    print(f"\nresults in {run_dir}")
    return run_dir


