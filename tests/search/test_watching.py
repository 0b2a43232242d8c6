"""Watching a search (README, "Watching a search"): the compact console, the epoch lines in the trials' worker
logs, trial folders (TensorBoard runs) named by id and family, and an Optuna study that explains itself."""
from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from search import console, progress
from search.trial_failures import trial_number
from search.progress import SearchProgress, epoch_line, summary, trial_label
from search import tuner
from search.study import BUILT_ATTR_PREFIX, RAY_TRIAL_ID_ATTR, SEARCH_CONSTANTS_ATTR, TRIAL_NUMBER_ATTR
from search.tuner import OptunaSearchTellingStops, trial_dirname

ANSI = re.compile(r"\x1b\[")


def fake_trial(trial_id: str, status: str, epoch: int = 0, value: float | None = None, best: float | None = None,
               family: str = "ecgnet") -> SimpleNamespace:
    result = {} if value is None else {"training_iteration": epoch, "val_micro_f1": value,
                                       "best_so_far_val_micro_f1": best if best is not None else value}
    return SimpleNamespace(trial_id=trial_id, status=status, config={"family": family}, last_result=result,
                           run_metadata=SimpleNamespace(num_failures=0), error_file=None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    return clock


def reporter(tty: bool, asha: bool = True) -> tuple[SearchProgress, io.StringIO]:
    stream = io.StringIO()
    return SearchProgress("val_micro_f1", "best_so_far_val_micro_f1", "max", 6, asha=asha, stream=stream,
                          tty=tty), stream


def test_status_block_counts_trials_and_shows_each_running_one(clock) -> None:
    callback, _ = reporter(tty=False)
    trials = [fake_trial("aaaa0001", "RUNNING", 3, 0.61, 0.65), fake_trial("aaaa0002", "TERMINATED", 2, 0.40, 0.71),
              fake_trial("aaaa0003", "PENDING", family="gru"), fake_trial("aaaa0004", "RUNNING", family="gru")]
    lines = callback.status(trials, elapsed_s=75).splitlines()
    assert lines[0] == "[01:15] 2 running, 1 pending, 1 terminated; best val_micro_f1 0.7100 (trial aaaa0002)"
    assert lines[1].split() == ["aaaa0001", "ecgnet", "epoch", "3/6", "val_micro_f1", "0.6100", "best", "0.6500"]
    assert lines[2].split() == ["aaaa0004", "gru", "starting"]  # no epoch reported yet
    assert len(lines) == 3  # pending and finished trials are counted, not listed


def test_finished_lines_say_how_each_trial_ended(clock, tmp_path) -> None:
    callback, _ = reporter(tty=False)
    assert callback.finished_line(fake_trial("aaaa0001", "TERMINATED", 2, 0.5, 0.55)) == (
        "trial aaaa0001 ecgnet: 2 epochs, best val_micro_f1 0.5500, stopped by ASHA at epoch 2")
    assert callback.finished_line(fake_trial("aaaa0002", "TERMINATED", 6, 0.7, 0.75, family="gru")) == (
        "trial aaaa0002 gru: 6 epochs, best val_micro_f1 0.7500, complete")
    errored = fake_trial("aaaa0003", "ERROR", 1, 0.1)
    errored.error_file = str(tmp_path / "error.txt")
    Path(errored.error_file).write_text("Failure # 1\nTraceback (most recent call last):\n  ...\n"
                                        "search.trial_failures.TrialFailed: non-finite loss: loss is nan\n")
    assert callback.finished_line(errored, error=True) == (
        "trial aaaa0003 ecgnet: 1 epoch, best val_micro_f1 0.1000, error: search.trial_failures.TrialFailed: "
        "non-finite loss: loss is nan")
    fifo, _ = reporter(tty=False, asha=False)
    assert fifo.finished_line(fake_trial("aaaa0004", "TERMINATED", 4, 0.5)).endswith("stopped early at epoch 4")


def test_a_file_gets_a_status_at_most_every_30_s_and_only_when_it_changed(clock) -> None:
    callback, stream = reporter(tty=False)
    trials = [fake_trial("aaaa0001", "RUNNING", 1, 0.5)]
    callback.on_step_end(0, trials)
    clock.now += progress.STATUS_EVERY_S - 1
    trials[0].last_result.update(training_iteration=2, val_micro_f1=0.6, best_so_far_val_micro_f1=0.6)
    callback.on_step_end(1, trials)  # too soon
    assert stream.getvalue().count("\n") == 2
    clock.now += 1
    callback.on_step_end(2, trials)  # 30 s on, changed: printed
    clock.now += progress.STATUS_EVERY_S
    callback.on_step_end(3, trials)  # 30 s on, unchanged: nothing
    callback.on_trial_complete(4, trials, trials[0])
    text = stream.getvalue()
    assert text.count("epoch 1/6") == 1 and text.count("epoch 2/6") == 1 and len(text.splitlines()) == 5
    assert not ANSI.search(text)


def test_a_terminal_gets_the_status_redrawn_in_place(clock) -> None:
    callback, stream = reporter(tty=True)
    trials = [fake_trial("aaaa0001", "RUNNING", 1, 0.5), fake_trial("aaaa0002", "RUNNING", 1, 0.4)]
    callback.on_step_end(0, trials)
    clock.now += progress.REDRAW_EVERY_S
    callback.on_step_end(1, trials)
    assert stream.getvalue().count("\x1b[3F\x1b[J") == 1  # the 3-line block erased before it is drawn again
    trials[1].status = "TERMINATED"
    callback.on_trial_complete(2, trials, trials[1])
    # The finished line replaces the block, which is drawn again below it; at the end the block goes.
    assert stream.getvalue().endswith("trial aaaa0002 ecgnet: 1 epoch, best val_micro_f1 0.4000, stopped by "
                                      "ASHA at epoch 1\n" + callback._last_text + "\n")
    callback.on_experiment_end(trials)
    assert stream.getvalue().endswith("\x1b[3F\x1b[J")


def test_the_callback_pickles_without_its_stream() -> None:
    import pickle

    callback, _ = reporter(tty=True)
    copy = pickle.loads(pickle.dumps(callback))
    assert copy._stream is None and copy._tty is None and copy.max_epochs == 6


def test_summary_counts_outcomes_and_names_the_chosen_model() -> None:
    import pandas as pd

    trials = pd.DataFrame({"status": ["TERMINATED", "TERMINATED", "TERMINATED", "ERROR"],
                           "stopped_by_asha": [True, True, False, False]})
    info = {"wall_time_s": 3725.0, "chosen_model": {"model": "ensemble_greedy", "thresholds": "val_tuned",
                                                    "trial_id": float("nan")}}
    assert summary(info, trials) == ["search finished in 1:02:05: 4 trials (1 complete, 2 stopped by ASHA, 1 error)",
                                     "chosen model: ensemble_greedy with val_tuned thresholds"]
    info["chosen_model"].update(model="rank1", trial_id="aaaa0001")
    assert summary(info, trials)[1] == "chosen model: rank1 with val_tuned thresholds (trial aaaa0001)"


def test_epoch_line_has_the_id_the_number_the_epoch_the_metrics_and_the_best() -> None:
    line = epoch_line(trial_label("ab12cd34", 4), 3, 6, {"val_micro_f1": 0.61234, "val_loss": 0.5, "lr": 1e-3,
                                                        "params": 9.0}, "val_micro_f1", 0.7)
    assert line == ("trial ab12cd34 (number 4) epoch 3/6: val_micro_f1 0.6123 val_loss 0.5000 | best val_micro_f1 so "
                    "far 0.7000")
    assert trial_label("ab12cd34") == "trial ab12cd34"


def test_a_finished_line_gives_the_number_in_the_trial_folder_name() -> None:
    callback, _ = reporter(tty=False)
    trial = fake_trial("aaaa0001", "TERMINATED", 6, 0.7, 0.75)
    trial.relative_logdir = "train_trial_aaaa0001_0_ecgnet"
    assert callback.finished_line(trial) == "trial aaaa0001 (number 0) ecgnet: 6 epochs, best val_micro_f1 0.7500, complete"


def test_warnings_are_one_line_without_the_source_line() -> None:
    saved = warnings.formatwarning
    try:
        console.install_warning_format()
        text = warnings.formatwarning("classes AF have fewer than 3 records", UserWarning, "split.py", 47,
                                      "    assignment = make_split(...)")
    finally:
        warnings.formatwarning = saved
    assert text == "warning: classes AF have fewer than 3 records (UserWarning)\n"


def test_watch_lines_give_the_three_views_for_the_run_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(progress, "_token_auth", lambda: True)
    run = tmp_path / "results" / "ecgnet-1"
    lines = progress.watch_lines("http://127.0.0.1:8265", run / "optuna.db", run / "tune", joined=False)
    assert lines[0] == "Ray dashboard: http://127.0.0.1:8265"
    assert "`ray get-auth-token`" in lines[1] and "auth_token" in lines[1]
    assert lines[2:] == ["Optuna study:  optuna-dashboard sqlite:///results/ecgnet-1/optuna.db",
                         "TensorBoard:   tensorboard --logdir results/ecgnet-1/tune"]
    monkeypatch.setattr(progress, "_token_auth", lambda: False)
    assert len(progress.watch_lines(None, run / "optuna.db", run / "tune", joined=True)) == 2


def test_trial_folders_are_named_by_id_study_number_and_family(monkeypatch) -> None:
    trial = SimpleNamespace(trainable_name="train_trial", trial_id="ab12cd34", config={"family": "gru"},
                            experiment_tag="12_family=gru,model/hidden=64,optim/lr=0.0010")
    monkeypatch.setitem(tuner._study_numbers, "ab12cd34", 11)  # the searcher proposed it as the study's trial 11
    name = trial_dirname(trial)
    assert name == "train_trial_ab12cd34_11_gru"
    assert trial_number(name, "ab12cd34") == 11 and name.split("_")[2] == "ab12cd34"
    # A trial the searcher did not number (a run from before, resumed) keeps Ray's count from its tag.
    monkeypatch.delitem(tuner._study_numbers, "ab12cd34")
    assert trial_dirname(trial) == "train_trial_ab12cd34_12_gru"


def tiny_space(trial: optuna.Trial) -> dict:
    """A define-by-run space for the searcher tests (module level: the searcher is pickled)."""
    trial.suggest_float("optim/lr", 1e-4, 1e-2, log=True)
    return {"family": "ecgnet", "optim/lr": trial.params["optim/lr"], "optim/epochs": 2}


def make_searcher(storage: str) -> OptunaSearchTellingStops:
    return OptunaSearchTellingStops(space=tiny_space, metric="best_so_far_val_micro_f1", mode="max",
                                    sampler=optuna.samplers.RandomSampler(seed=0), study_name="search",
                                    storage=optuna.storages.RDBStorage(storage), max_epochs=2)


def result(epoch: int, value: float) -> dict:
    return {"training_iteration": epoch, "best_so_far_val_micro_f1": value}


def test_study_names_its_metric_and_records_ray_ids_numbers_and_every_epoch(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(storage)
    for trial_id in ("aaaa0001", "aaaa0002", "aaaa0003"):
        assert searcher.suggest(trial_id)["family"] == "ecgnet"
    searcher.suggest("aaaa0001")  # asked again for the same trial: still one study trial, numbered once
    searcher.on_trial_result("aaaa0001", result(1, 0.4))
    searcher.on_trial_complete("aaaa0001", result(2, 0.6))  # ran to max_epochs: that result was never passed
    searcher.on_trial_complete("aaaa0002", result(1, 0.3))  # ASHA stopped it at epoch 1
    searcher.on_trial_complete("aaaa0003", error=True)
    study = optuna.load_study(study_name="search", storage=storage)
    assert study.metric_names == ["best_so_far_val_micro_f1"]
    trials = study.trials
    assert [t.user_attrs for t in trials] == [{RAY_TRIAL_ID_ATTR: f"aaaa000{n}"} for n in (1, 2, 3)]
    # The study's number is the trial's number: its folder (trial_dirname) and trials.csv take it from here.
    assert [tuner._study_numbers[f"aaaa000{n}"] for n in (1, 2, 3)] == [t.number for t in trials] == [0, 1, 2]
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL"]
    assert trials[0].intermediate_values == {1: 0.4, 2: 0.6} and trials[0].value == 0.6
    assert trials[1].intermediate_values == {1: 0.3} and trials[1].value == 0.3
    # What no trial sampled, with the value every trial had: the search's constants, for optuna-dashboard.
    assert study.user_attrs[SEARCH_CONSTANTS_ATTR] == {"family": "ecgnet", "optim/epochs": 2}


def test_a_resumed_searcher_fails_the_study_trials_it_never_owned(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(storage)
    searcher.suggest("aaaa0001")
    searcher.suggest("aaaa0002")
    searcher.on_trial_complete("aaaa0001", result(2, 0.5))
    searcher.save(str(tmp_path / "searcher.pkl"))  # the experiment state --resume restores
    searcher.suggest("aaaa0003")  # proposed after the last snapshot, then the driver was killed
    restored = make_searcher(storage)
    restored.restore(str(tmp_path / "searcher.pkl"))
    states = [t.state.name for t in optuna.load_study(study_name="search", storage=storage).trials]
    assert states == ["COMPLETE", "RUNNING", "FAIL"]  # aaaa0002 goes on (Ray resumes it); aaaa0003 never will
    restored.suggest("aaaa0004")  # the study's next number, 3: trial 2 was the orphan it failed
    assert tuner._study_numbers["aaaa0004"] == 3


def test_a_searcher_saved_before_study_numbers_keeps_numbering_by_ray_count(tmp_path) -> None:
    """--resume of a run from before: its searcher's saved state lacks `_numbered_by_study`, and its new trials go
    on with Ray's count (the study trial's `trial_number` attribute and the folder's number, from the tag)."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(storage)
    del searcher._numbered_by_study, searcher._sampled
    searcher.suggest("bbbb0001")
    searcher.suggest("bbbb0002")
    trials = optuna.load_study(study_name="search", storage=storage).trials
    assert [t.user_attrs[TRIAL_NUMBER_ATTR] for t in trials] == [1, 2]
    assert "bbbb0002" not in tuner._study_numbers


def test_a_trial_at_a_lower_rate_records_the_values_its_model_was_built_with(tmp_path) -> None:
    """A stem kernel of 17 samples drawn at the records' 250 Hz is built as 7 at 100 Hz: the study trial keeps the
    drawn 17 (its parameter) and says 7 (`built model/stem_kernel`), which trials.csv and best_configs.csv hold."""
    from ecg.run_folder import DataRecord, RunFolder, RunRecord
    from ecg.train.config import flatten
    from search.options import SearchOptions
    from spaces.warm_start import WarmStart

    folder = RunFolder.create(tmp_path, "ecgnet")
    options = SearchOptions(space="ecgnet", seed=3, num_samples=4, max_epochs=2, scheduler="fifo").resolved(0)
    folder.save(RunRecord(status="running", space="ecgnet", seed=3, args=options.to_dict(),
                          data=DataRecord(source="synthetic heart-vector set (120 records)",
                                          convention={"task": None, "split": "stratified", "metric": "val_micro_f1"}),
                          study_name=folder.path.name))
    start = WarmStart("hand", {"data/fs": 100, "model/stem_kernel": 17}, drawn=True)
    searcher = tuner.make_searcher(options, folder, 250, 2500,
                                   starts=[(start, {"data/fs": 100, "model/stem_kernel": 17})])
    config = flatten(searcher.suggest("cccc0001"))  # Ray's nesting of "model/stem_kernel", flat again
    assert config["data/fs"] == 100 and config["model/stem_kernel"] == 7
    study = optuna.load_study(study_name=folder.path.name, storage=folder.study_url)
    trial = study.trials[0]
    assert trial.params["model/stem_kernel"] == 17
    assert trial.user_attrs[f"{BUILT_ATTR_PREFIX}model/stem_kernel"] == 7
    attrs = study.user_attrs
    assert {k: attrs[k] for k in ("run", "metric", "direction", "space", "data", "seed", "sampler", "scheduler",
                                  "max_epochs", "num_samples")} == {
        "run": folder.path.name, "metric": "val_micro_f1", "direction": "maximize", "space": "ecgnet",
        "data": "synthetic heart-vector set (120 records)", "seed": 3, "sampler": "tpe", "scheduler": "fifo",
        "max_epochs": 2, "num_samples": 4}
    assert attrs["task"] == "-" and "best_so_far_val_micro_f1" in attrs["trial_value"]
    assert "drawn at the records' 250 Hz" in attrs["drawn_vs_built"]
    assert attrs[SEARCH_CONSTANTS_ATTR]["optim/epochs"] == 2
    assert "model/stem_kernel" not in attrs[SEARCH_CONSTANTS_ATTR] and "data/fs" not in attrs[SEARCH_CONSTANTS_ATTR]


def short_tmp() -> Path:
    """A short folder for a Ray session: its socket paths must stay under the 107 characters Unix allows."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="r14", dir="/tmp"))


def event_tags(trial_dir: Path) -> tuple[list[str], dict[str, list[tuple[int, float]]], dict[str, object]]:
    """A trial's TensorBoard run as TensorBoard reads it: its scalar tags in the order written, each tag's
    (step, value) points, and the HPARAMS of the trial."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(trial_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    points = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags}
    hparams: dict[str, object] = {}
    for content in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for name, value in data.session_start_info.hparams.items():
                hparams[name] = getattr(value, value.WhichOneof("kind"))
    return tags, points, hparams


@pytest.mark.slow
def test_a_tiny_search_explains_itself_in_the_study_the_worker_logs_and_a_short_console(finished_run, cli) -> None:
    """The session's shared search (tests/search/conftest.py): a local Ray with token auth, as a user starts it."""
    run_dir, n_trials = finished_run.run_dir, int(finished_run.option("--num-samples"))
    max_epochs, top_k = int(finished_run.option("--max-epochs")), int(finished_run.option("--top-k"))
    trials = cli.read_csv(run_dir / "trials.csv")
    assert len(trials) == n_trials
    # One number per trial, the study's: trials.csv, the folder, optuna-dashboard, TensorBoard's run name.
    assert sorted(trials["trial_number"]) == list(range(n_trials)) and "optuna_trial_number" not in trials.columns

    # The study is named after its run and says what the run is.
    study = optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert study.metric_names == ["best_so_far_val_micro_f1"]
    attrs = study.user_attrs
    assert (attrs["run"], attrs["metric"], attrs["space"], attrs["seed"]) == (run_dir.name, "val_micro_f1",
                                                                               "ecgnet", 0)
    assert attrs["data"].startswith("synthetic") and attrs["max_epochs"] == max_epochs
    constants = json.loads((run_dir / "run.json").read_text())["search_constants"]
    assert attrs[SEARCH_CONSTANTS_ATTR] == constants and constants["optim/epochs"] == max_epochs
    by_ray_id = {t.user_attrs[RAY_TRIAL_ID_ATTR]: t for t in study.trials}
    assert set(by_ray_id) == set(trials["trial_id"])
    epochs = cli.read_csv(run_dir / "epochs.csv")
    for row in trials.itertuples():
        study_trial = by_ray_id[row.trial_id]
        assert study_trial.number == row.trial_number and TRIAL_NUMBER_ATTR not in study_trial.user_attrs
        # Every epoch the trial ran is an intermediate value, the last one included.
        assert sorted(study_trial.intermediate_values) == list(range(1, row.epochs_run + 1))
        assert study_trial.state.name == ("PRUNED" if row.stopped_by_asha else "COMPLETE")

        # Its folder (TensorBoard's run) has its number; TensorBoard shows the epoch's metrics, the search
        # metric first, and no Ray bookkeeping or per-trial constant; HPARAMS the sampled values and model size.
        trial_dir = run_dir / "tune" / f"train_trial_{row.trial_id}_{row.trial_number}_ecgnet"
        tags, points, hparams = event_tags(trial_dir)
        assert tags[:2] == ["search/val_micro_f1", "search/val_micro_f1_best_so_far"]
        assert set(tags) == {*tags[:2], "training/train_loss", "training/lr", "training/epoch_time_s",
                             "training/peak_mem_mb", "validation/val_loss", "validation/val_macro_f1",
                             "validation/val_macro_auc", "validation/val_micro_precision",
                             "validation/val_micro_recall", "validation/val_exact_match"}
        mine = epochs[epochs["trial_id"] == row.trial_id].sort_values("epoch")
        assert [step for step, _ in points["search/val_micro_f1"]] == mine["epoch"].tolist()
        assert [v for _, v in points["validation/val_loss"]] == pytest.approx(mine["val_loss"].tolist(), rel=1e-6)
        sampled = set(study_trial.params)  # the ecgnet space: its parameters are the config's names
        assert set(hparams) == sampled | {"params", "macs", "latency_ms_b1", "input_length"}
        built = trials.set_index("trial_id").loc[row.trial_id]  # trials.csv: the values as built
        for name in sampled:
            assert hparams[name] == (pytest.approx(float(built[name])) if isinstance(hparams[name], float)
                                     else built[name]), name
        assert hparams["params"] == row.params
    names = sorted(p.name for p in (run_dir / "tune").glob("train_trial_*"))
    assert names == sorted(f"train_trial_{r.trial_id}_{r.trial_number}_ecgnet" for r in trials.itertuples())

    # The worker logs: a line when each trial starts and ends and one per epoch, each naming the trial by
    # id and number; STDERR holds no per-epoch line (Ray's checkpoint logging is silenced).
    logs = "".join(p.read_text(errors="replace") for p in finished_run.worker_logs.glob("*worker-*.out"))
    errors = "".join(p.read_text(errors="replace") for p in finished_run.worker_logs.glob("*worker-*.err"))
    for row in trials.itertuples():
        label = re.escape(f"trial {row.trial_id} (number {row.trial_number})")
        assert re.search(rf"^{label} started: ecgnet at {int(row.input_fs)} Hz, {max_epochs} epochs, from epoch 1, "
                         rf"on cpu \(folder "
                         rf"train_trial_{row.trial_id}_{row.trial_number}_ecgnet\)$", logs, re.M), logs
        for epoch in range(1, row.epochs_run + 1):
            assert re.search(rf"^{label} epoch {epoch}/{max_epochs}: val_micro_f1 \d\.\d{{4}} .*"
                             rf"\| best val_micro_f1 so far \d\.\d{{4}}$", logs, re.M), (row.trial_id, epoch)
        ended = "stopped by Ray Tune (ASHA, or the search's end)" if row.stopped_by_asha else "ended"
        assert re.search(rf"^{label} {re.escape(ended)} after epoch {row.epochs_run}/{max_epochs}: best val_micro_f1 "
                         rf"{row.best_val_micro_f1:.4f}$", logs, re.M), logs
    assert "Checkpoint successfully created" not in errors and "train_trial_" not in errors, errors

    out = finished_run.stdout + finished_run.stderr
    assert not ANSI.search(out)  # not a terminal: no ANSI codes
    lines = out.splitlines()
    assert f"Optuna study:  optuna-dashboard sqlite:///{run_dir / 'optuna.db'}" in lines
    assert f"TensorBoard:   tensorboard --logdir {run_dir / 'tune'}" in lines
    assert any("`ray get-auth-token`" in line for line in lines)
    for row in trials.itertuples():
        ended = f"stopped by ASHA at epoch {row.epochs_run}" if row.stopped_by_asha else "complete"
        assert sum(line.startswith(f"trial {row.trial_id} (number {row.trial_number}) ecgnet: {row.epochs_run} "
                                   "epoch") and line.endswith(ended) for line in lines) == 1
    # The test table: each model under its chosen rule only, then what cv_score is.
    table = lines[lines.index("Test results (every choice made on validation only):") + 1:]
    test = cli.read_csv(run_dir / "test_results.csv")
    models = test.loc[test["chosen"], ["model", "thresholds"]].astype(str).values.tolist()
    # rank1..rank<top_k>, their mean and the greedy ensemble
    assert [line.split()[:2] for line in table[1:len(models) + 1]] == models and len(models) == top_k + 2
    assert table[len(models) + 1].startswith("cv_score: what chose each model's rule")
    assert re.search(rf"^search finished in \d\d:\d\d: {n_trials} trials \(", out, re.M)
    assert re.search(r"^chosen model: \S+ with \S+ thresholds", out, re.M)
    assert not any(line.startswith("  ") and "make_split" in line for line in lines)  # no echoed source
    # Header (7 at most), a status or two, a line per trial, the test table (a line per model and 3), the report's
    # path, the summary (3), the data's and Ray's one-line warnings (2): not Ray's ~65 lines a trial.
    printed = [line for line in lines if line.strip()]
    assert len(printed) <= 7 + 2 + n_trials + len(models) + 3 + 1 + 3 + 2, out

    # The report leads with the chosen model's test figures and their intervals, from the probabilities kept.
    report = (run_dir / "report.html").read_text()
    chosen = test[test["chosen"]].set_index("model").loc[json.loads((run_dir / "run.json").read_text())
                                                         ["chosen_model"]["model"]]
    assert re.search(rf"Chosen model on test: micro-F1 {chosen['test_micro_f1']:.3f} \[0\.\d{{3}}, 0\.\d{{3}}\], "
                     rf"macro-F1 {chosen['test_macro_f1']:.3f} \[", report), report[:3000]
    assert "The winners&#x27; hyperparameters" in report or "The winners' hyperparameters" in report


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(ray: str, ray_tmp: Path, env: dict[str, str], dashboard_port: int):
    """`ray start --head --block` with the dashboard, in its own temp dir and ports; retried, since a loaded
    machine can miss Ray's fixed start-up windows (as tests/search/test_gpu_packing.py's ray_head does)."""
    import subprocess
    import time

    log = ray_tmp / "ray_start.log"
    for _ in range(3):
        head = subprocess.Popen([ray, "start", "--head", "--block", f"--temp-dir={ray_tmp}", f"--port={free_port()}",
                                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                                 # Every port its own: Ray's fixed defaults (agent 52365, client 10001, ...)
                                 # may be taken by another Ray on this machine.
                                 f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                                 f"--dashboard-agent-grpc-port={free_port()}", f"--metrics-export-port={free_port()}",
                                 f"--runtime-env-agent-port={free_port()}", "--num-cpus=2",
                                 "--include-dashboard=true", "--disable-usage-stats"],
                                env=env, start_new_session=True, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and head.poll() is None and "block forever" not in log.read_text():
            time.sleep(1)
        if head.poll() is None and "block forever" in log.read_text():
            return head
        stop_cluster(head, ray_tmp)
    raise AssertionError(f"ray start failed:\n{log.read_text()[-3000:]}")


def stop_cluster(head, ray_tmp: Path) -> None:
    """Stop the cluster this test started, and nothing else: `ray start --block` stops the processes it
    started on SIGTERM; any process left that names this cluster's temp folder is killed by its pid."""
    import os
    import signal
    import subprocess

    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(ray_tmp) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


@pytest.mark.slow
def test_a_search_submitted_as_a_ray_job_shows_its_driver_output_in_the_job_logs(tmp_path, cli) -> None:
    """README, "As a Ray job": `ray job submit -- python launch.py --address auto ...` on a local cluster; the
    job's logs (what the dashboard's Jobs page shows) hold the search's own lines."""
    import secrets
    import shutil
    import subprocess
    import sys
    import time

    ray = str(Path(sys.executable).parent / "ray")
    ray_tmp = short_tmp()
    dashboard = f"http://127.0.0.1:{free_port()}"
    # Token auth with a token of its own (by environment, never the user's token file).
    env = cli.env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    head = start_cluster(ray, ray_tmp, env, int(dashboard.rsplit(":", 1)[1]))
    try:
        deadline = time.monotonic() + 180
        while subprocess.run([ray, "job", "list", "--address", dashboard], env=env, capture_output=True).returncode:
            assert time.monotonic() < deadline and head.poll() is None, "the local Ray cluster did not start"
            time.sleep(3)
        deadline = time.monotonic() + 300
        while True:  # the head's job agent starts a little after its dashboard answers
            submit = subprocess.run(
                [ray, "job", "submit", "--address", dashboard, "--submission-id", "watching-14", "--",
                 sys.executable, str(cli.root / "launch.py"), "--address", "auto", *cli.small, "--num-samples", "1",
                 "--max-epochs", "1", "--top-k", "1", "--results-dir", str(tmp_path)],
                env=env, capture_output=True, text=True, timeout=900)
            if "No available agent" not in submit.stderr or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert submit.returncode == 0, (submit.stdout + submit.stderr)[-3000:]
        status = subprocess.run([ray, "job", "status", "--address", dashboard, "watching-14"], env=env,
                                capture_output=True, text=True)
        assert "Job 'watching-14' succeeded" in status.stdout
        logs = subprocess.run([ray, "job", "logs", "--address", dashboard, "watching-14"], env=env,
                              capture_output=True, text=True, timeout=60).stdout
        run_dir = cli.only_run(tmp_path)
        trial_id = cli.read_csv(run_dir / "trials.csv")["trial_id"].iloc[0]
        assert f"run folder: {run_dir}" in logs
        assert f"TensorBoard:   tensorboard --logdir {run_dir / 'tune'}" in logs
        assert f"trial {trial_id} (number 0) ecgnet: 1 epoch, best val_micro_f1 " in logs
        assert re.search(r"^search finished in \d\d:\d\d: 1 trials \(1 complete\)$", logs, re.M), logs
    finally:
        stop_cluster(head, ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_tensorboard_gets_the_epoch_metrics_search_metric_first_and_nothing_constant() -> None:
    from search.tensorboard import epoch_scalars, trial_hparams

    result = {"val_loss": 0.3, "val_micro_f1": 0.6, "best_so_far_val_micro_f1": 0.7, "train_loss": 0.4, "lr": 1e-3,
              "epoch_time_s": 2.0, "peak_mem_mb": 500.0, "val_macro_f1": 0.2, "params": 1000, "macs": 5e5,
              "input_fs": 250, "input_length": 2500, "setup_s": 1.5, "epoch": 3, "done": False,
              "training_iteration": 3, "time_total_s": 9.0, "should_checkpoint": True, "iterations_since_restore": 3,
              "node_id": "ab", "device": "cpu"}
    assert epoch_scalars(result, "val_micro_f1", "best_so_far_val_micro_f1") == {
        "search/val_micro_f1": 0.6, "search/val_micro_f1_best_so_far": 0.7, "training/train_loss": 0.4,
        "training/lr": 1e-3, "training/epoch_time_s": 2.0, "training/peak_mem_mb": 500.0,
        "validation/val_loss": 0.3, "validation/val_macro_f1": 0.2}
    # The loss as the search metric leads instead; a trial rejected over budget (NaN scores) logs none of them.
    assert list(epoch_scalars(result, "val_loss", "best_so_far_val_loss"))[:1] == ["search/val_loss"]
    assert "validation/val_micro_f1" in epoch_scalars(result, "val_loss", "best_so_far_val_loss")
    rejected = {"val_micro_f1": float("nan"), "best_so_far_val_micro_f1": float("nan"), "params": 9e6}
    assert epoch_scalars(rejected, "val_micro_f1", "best_so_far_val_micro_f1") == {}
    config = {"family": "ecgnet", "model/width": 8, "model/use_age_sex": True, "optim/lr": 1e-3, "optim/epochs": 6}
    assert trial_hparams(config, ["model/width", "model/use_age_sex", "optim/lr"], result) == {
        "model/width": 8, "model/use_age_sex": True, "optim/lr": 1e-3, "params": 1000.0, "macs": 5e5,
        "input_length": 2500.0}


def test_the_ray_job_is_named_after_the_run(monkeypatch) -> None:
    from search import cluster
    from search.options import SearchOptions

    calls = []

    class Context:
        dashboard_url = "127.0.0.1:8265"

    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster.ray, "init", lambda **kwargs: calls.append(kwargs) or Context())
    monkeypatch.setattr(cluster, "_secure_token_file", lambda create=False: None)  # the user's token file: untouched
    monkeypatch.setattr(cluster, "_listen_on_loopback_only", lambda: None)
    try:
        options = SearchOptions(space="gru")
        assert cluster.start(options, job_name="gru-20261201-101500") == "http://127.0.0.1:8265"
        cluster.start(options)  # joining a cluster connects before the run folder is named
    finally:
        cluster.stop()
    assert [call["job_config"].metadata for call in calls] == [{"job_name": "gru-20261201-101500"},
                                                               {"job_name": "gru search"}]


@pytest.mark.parametrize("argv, dashboard", [([], True), (["--no-dashboard"], False)])
def test_a_local_ray_starts_with_its_dashboard_unless_told_not_to(monkeypatch, argv, dashboard) -> None:
    """--no-dashboard starts the local Ray without its dashboard (and prints no URL); the first-driver worker
    prestart stays off either way."""
    import launch
    from search import cluster
    from search.options import SearchOptions

    calls = []

    class Context:
        dashboard_url = "127.0.0.1:8265" if dashboard else ""  # what Ray gives without a dashboard

    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster.ray, "init", lambda **kwargs: calls.append(kwargs) or Context())
    monkeypatch.setattr(cluster, "_secure_token_file", lambda create=False: None)  # the user's token file: untouched
    monkeypatch.setattr(cluster, "_listen_on_loopback_only", lambda: None)
    values = {k: v for k, v in vars(launch.parser().parse_args(argv)).items() if k != "list_spaces"}
    try:
        url = cluster.start(SearchOptions(**values))
    finally:
        cluster.stop()
    assert url == ("http://127.0.0.1:8265" if dashboard else None)
    assert calls[0]["include_dashboard"] is dashboard
    assert calls[0]["_system_config"] == {"prestart_worker_first_driver": False}


@pytest.mark.slow
def test_a_local_search_runs_without_its_dashboard(tmp_path, cli) -> None:
    """launch.py --no-dashboard, with a local Ray as a user starts it: the search runs to its end, prints no
    dashboard URL (the Optuna and TensorBoard lines stay), and its run.json keeps the option (a resume starts Ray
    the same way)."""
    results = tmp_path / "results"
    proc = cli.launch(*cli.small, "--num-samples", "1", "--max-epochs", "1", "--top-k", "1", "--no-dashboard",
                      "--results-dir", str(results))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ray dashboard:" not in proc.stdout and "Optuna study:  optuna-dashboard" in proc.stdout
    info = json.loads((cli.only_run(results) / "run.json").read_text())
    assert info["status"] == "complete" and info.get("dashboard") is None and info["args"]["no_dashboard"] is True


def test_the_terminal_test_table_shows_each_model_under_its_chosen_rule_and_says_what_cv_score_is() -> None:
    import pandas as pd

    from search.winners import format_table

    rows = [{"model": m, "thresholds": t, "chosen": c, "cv_score": 0.5 + i / 100, "val_micro_f1": 0.6,
             "test_micro_f1": 0.7, "test_macro_f1": 0.3, "test_macro_auc": 0.8}
            for i, (m, t, c) in enumerate([("rank1", "0.5", False), ("rank1", "per_class", True),
                                           ("ensemble_greedy", "0.5", True), ("ensemble_greedy", "global", False)])]
    lines = format_table(pd.DataFrame(rows)).splitlines()
    assert [line.split()[:3] for line in lines[1:3]] == [["rank1", "per_class", "0.5100"],
                                                        ["ensemble_greedy", "0.5", "0.5200"]]
    assert len(lines) == 4 and lines[3].startswith("cv_score: what chose each model's rule")
    assert format_table(pd.DataFrame()) == "no trial could be evaluated on test"
