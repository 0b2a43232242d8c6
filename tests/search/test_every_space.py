"""Every space through `launch.py` and a real Ray run: 120 synthetic records, 2 trials. The ECGNet and `all` runs
start their own local Ray as a user does; the other spaces join one `ray start` cluster that the test session
shares (`ray_cluster` in conftest.py), so each does not pay a Ray start of its own.

Two of the runs train 3 epochs under another selection metric and check that each trial kept (checkpointed)
the epoch that metric picks; the ECGNet run's winner is then retrained with `python -m ecg.train` from its
run folder and must reproduce its trial's validation metric. The `all` space is also killed mid-run (SIGKILL)
and resumed: its searcher, with the space inside, comes back from Ray's experiment state.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ecg.models import create_model, model_options
from ecg.train import TrialConfig, load_checkpoint
from spaces import FAMILY_SPACES, SPACES
from tests.search.test_benchmark_runs import README_BENCHMARKS

pytestmark = pytest.mark.slow

TINY = ("--n-records", "120", "--cpus-per-trial", "1", "--seed", "0", "--top-k", "2")
# Space -> extra options (2 trials unless said). The metric runs train 3 epochs without early stopping, so the
# kept epoch can differ from the last one and from the micro-F1 one. The `all` run is SIGKILLed once its
# first trial has finished and then resumed (one trial at a time, so the kill finds trials still to run).
RUNS = {
    "ecgnet": ("--max-epochs", "2", "--grace-period", "2"),
    "resnet": ("--max-epochs", "3", "--scheduler", "fifo", "--metric", "val_loss"),
    "resnext": ("--max-epochs", "1", "--grace-period", "1"),
    "seresnet": ("--max-epochs", "3", "--scheduler", "fifo", "--metric", "val_macro_auc"),
    "lstm": ("--max-epochs", "1", "--grace-period", "1"),
    "gru": ("--max-epochs", "1", "--grace-period", "1"),
    "hybrid": ("--max-epochs", "1", "--grace-period", "1"),
    "all": ("--num-samples", "3", "--max-epochs", "2", "--scheduler", "fifo", "--max-concurrent", "1"),
}
# The runs that start Ray as a user does (no --address): the README's resume and retrain use the ECGNet run,
# and the `all` run is killed with its local Ray. The others join the session's shared cluster.
LOCAL_RAY = {"ecgnet", "all"}
_runs: dict[str, tuple[Path, subprocess.CompletedProcess]] = {}
_at_kill: dict[str, object] = {}  # what the killed `all` run held before its resume


def run_space(space: str, results: Path, cli,
              request: pytest.FixtureRequest) -> tuple[Path, subprocess.CompletedProcess]:
    """The run folder of `space`'s tiny search and what launch.py printed (run once per test session)."""
    if space not in _runs:
        trials = () if "--num-samples" in RUNS[space] else ("--num-samples", "2")
        args = ("--space", space, *TINY, *trials, *RUNS[space], "--results-dir", str(results / space))
        if space == "all":
            (results / space).mkdir()
            run_dir, _ = cli.kill_after_a_trial_finishes(*args, results=results / space, max_epochs=2)
            _at_kill.update(trials_csv=(run_dir / "trials.csv").exists(), study=cli.study_trials(run_dir),
                            searcher_state=list((run_dir / "tune").glob("searcher-state-*.pkl")))
            proc = cli.launch("--resume", str(run_dir))
        elif space in LOCAL_RAY:
            proc = cli.launch(*args)
        else:
            cluster = request.getfixturevalue("ray_cluster")
            proc = cli.launch(*args, "--address", cluster.address, env=cluster.env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _runs[space] = cli.only_run(results / space), proc
    return _runs[space]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spaces")


def _option(args: tuple[str, ...], name: str, default: str) -> str:
    return args[args.index(name) + 1] if name in args else default


@pytest.mark.parametrize("space", list(SPACES))
def test_space_runs_end_to_end_and_exports_everything(space: str, results: Path, cli, request) -> None:
    run_dir, proc = run_space(space, results, cli, request)
    assert run_dir.name.startswith(f"{space}-")
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
    assert "Test results" in proc.stdout and f"results in {run_dir}" in proc.stdout
    metric = _option(RUNS[space], "--metric", "val_micro_f1")
    epochs_per_trial = int(_option(RUNS[space], "--max-epochs", "1"))

    trials = cli.read_csv(run_dir / "trials.csv")
    n_trials = int(_option(RUNS[space], "--num-samples", "2"))
    assert len(trials) == n_trials and set(trials["status"]) == {"TERMINATED"}
    families = set(trials["family"])
    assert families <= set(FAMILY_SPACES) and (space == "all" or families == {space})
    # Each row's model columns are exactly its family's options (no family-qualified study names leak out),
    # and the row rebuilds its model.
    assert not [c for c in trials.columns if c.split("/")[0] in FAMILY_SPACES]
    for _, row in trials.iterrows():
        config = TrialConfig.from_flat(row.to_dict())
        assert set(config.model) <= set(model_options(config.family))
        assert config.optim.metric == metric and config.optim.epochs == epochs_per_trial
        # Built for 10 s at the trial's input rate (a segmentation is cut for that length).
        create_model(config.family, n_leads=8, n_classes=26, length=10 * (config.fs or 250), **config.model)

    epochs = cli.read_csv(run_dir / "epochs.csv")
    assert len(epochs) == trials["epochs_run"].sum()
    assert f"best_so_far_{metric}" in epochs.columns

    best = cli.read_csv(run_dir / "best_configs.csv")
    ascending = metric == "val_loss"
    ranked = trials.sort_values(f"best_{metric}", ascending=ascending)["trial_id"].tolist()
    assert best["trial_id"].tolist() == ranked[:2]
    assert TrialConfig.from_csv(run_dir / "best_configs.csv").family in families
    test = cli.read_csv(run_dir / "test_results.csv")
    assert len(test) and test["test_micro_f1"].between(0, 1).all()
    assert len(pd.read_csv(run_dir / "per_class.csv"))
    assert len(pd.read_csv(run_dir / "split.csv")) == 120

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["args"]["space"] == space and info["args"]["metric"] == metric
    joined = None if space in LOCAL_RAY else request.getfixturevalue("ray_cluster").address
    assert info["args"]["address"] == joined  # a local Ray of its own, or the shared cluster
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.value for t in complete) == pytest.approx(sorted(trials[f"best_{metric}"]))


@pytest.mark.parametrize("space", [s for s, args in RUNS.items() if "--metric" in args])
def test_each_trial_keeps_the_epoch_its_selection_metric_picks(space: str, results: Path, cli, request) -> None:
    run_dir, _ = run_space(space, results, cli, request)
    metric = _option(RUNS[space], "--metric", "val_micro_f1")
    epochs = cli.read_csv(run_dir / "epochs.csv")
    for trial_dir in sorted((run_dir / "tune").glob("train_trial_*")):
        trial_id = trial_dir.name.split("_")[2]
        history = epochs[epochs["trial_id"] == trial_id].set_index("epoch")[metric]
        assert len(history) == 3
        picked = int(history.idxmin() if metric == "val_loss" else history.idxmax())
        (checkpoint,) = trial_dir.glob("checkpoint_*")
        meta = load_checkpoint(checkpoint)["meta"]
        assert meta["best_epoch"] == picked and meta["best_metrics"][metric] == pytest.approx(history[picked])
        trials = cli.read_csv(run_dir / "trials.csv").set_index("trial_id")
        assert int(trials.loc[trial_id, "best_epoch"]) == picked


def test_a_winner_retrained_from_its_run_folder_reproduces_its_trial(results: Path, cli, tmp_path, request) -> None:
    """The README's retrain command on the run's own records and split, for the trial's own epochs."""
    run_dir, _ = run_space("ecgnet", results, cli, request)
    best = cli.read_csv(run_dir / "best_configs.csv")
    out = tmp_path / "retrain"
    proc = subprocess.run([sys.executable, "-m", "ecg.train", "--config-csv", str(run_dir / "best_configs.csv"),
                           "--row", "0", "--out", str(out)], cwd=cli.root, env=cli.env(), text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = pd.read_csv(run_dir / "split.csv")["split"].value_counts()
    assert f"run {run_dir}" in proc.stderr
    assert f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test" in proc.stderr
    assert "synthetic(n=120, seed=0, fs=250, length=2500)" in proc.stderr
    # The same records in the same split as the run ...
    assert pd.read_csv(out / "split.csv").equals(pd.read_csv(run_dir / "split.csv"))
    # ... and the trial's validation metric, epoch for epoch.
    metrics = pd.read_csv(out / "metrics.csv")
    trial_epochs = cli.read_csv(run_dir / "epochs.csv")
    trial_epochs = trial_epochs[trial_epochs["trial_id"] == best["trial_id"][0]]
    assert metrics["val_micro_f1"].tolist() == pytest.approx(trial_epochs["val_micro_f1"].tolist(), abs=1e-6)
    assert metrics["val_micro_f1"].max() == pytest.approx(best["best_val_micro_f1"][0], abs=1e-6)


@pytest.mark.faults
def test_the_all_space_resumes_after_sigkill_with_its_searcher(results: Path, cli, request) -> None:
    """Fault 4 of docs/reliability.md for `--space all`: the searcher (with the space inside) is pickled into
    Ray's experiment state, comes back on --resume, and the same study goes on."""
    run_dir, proc = run_space("all", results, cli, request)
    assert not _at_kill["trials_csv"], "the driver exported before it was killed"
    assert _at_kill["searcher_state"], "Ray saved no searcher state"
    assert "resuming run folder" in proc.stdout
    trials = cli.read_csv(run_dir / "trials.csv")
    assert len(trials) == 3 and (trials["epochs_run"] == 2).all()
    # The restored searcher knew its trials: every Ray trial, those running at the kill included, was told to
    # the same study (COMPLETE with its best value); a reset searcher would leave them RUNNING or FAILED.
    before, after = _at_kill["study"], cli.study_trials(run_dir)
    assert [t.number for t in after[:len(before)]] == [t.number for t in before]
    complete = [t for t in after if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    # Every study trial sampled a family and only that family's qualified options.
    for trial in complete:
        assert {p.split("/")[0] for p in trial.params if p.count("/") == 2} <= {trial.params["family"]}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and len(info["resumes"]) == 1


# --- The README's "More ways to run it", each command as written, at tiny sizes -------------------------------
README = Path(__file__).resolve().parents[2] / "README.md"
# What each command becomes here: the same entry point and options, with tiny sizes and temporary paths (and a
# search joins the session's `ray start` cluster).
# {synth}: a Hefei-layout folder written by the synthetic command; {run}: the ECGNet run of this module.
README_RUNS = {
    "python launch.py --list-spaces": (["launch.py", "--list-spaces"], "gru/model/version"),
    "python launch.py --resume results/ecgnet-20261125-101500": (["launch.py", "--resume", "{run}"], "complete"),
    "python -m ecg.synthetic --out /tmp/synth --n 2000 --seed 0":
        (["-m", "ecg.synthetic", "--out", "{synth}", "--n", "60", "--seed", "0", "--fs", "250", "--length", "2500"],
         ""),
    "python -m ecg.inspect ~/hf_round2": (["-m", "ecg.inspect", "{synth}"], "60"),
    "python -m ecg.train --config-csv results/<run>/best_configs.csv --row 0 --epochs 200":
        (["-m", "ecg.train", "--config-csv", "{run}/best_configs.csv", "--row", "0", "--epochs", "1",
          "--out", "{tmp}/retrain"], "written to"),
    "python -m ecg.synthetic.plot --out docs/synthetic_diagnoses.png":
        (["-m", "ecg.synthetic.plot", "--out", "{tmp}/diagnoses.png", "--n", "200"], ""),
    "python launch.py --objectives val_micro_f1,latency_ms --max-latency-ms 5":
        (["launch.py", "--objectives", "val_micro_f1,latency_ms", "--max-latency-ms", "5", "--n-records", "120",
          "--num-samples", "2", "--max-epochs", "1", "--top-k", "1", "--results-dir", "{tmp}/results"], "results in"),
    "python -m ecg.train --family resnet --model features=both --epochs 5":
        (["-m", "ecg.train", "--family", "resnet", "--model", "features=both", "--epochs", "1", "--n-records", "120",
          "--fs", "100", "--length", "1000", "--out", "{tmp}/featured"], "written to"),
}
# Run through launch.py and Ray by another test, with the same options at tiny sizes.
TESTED_ELSEWHERE = {
    **{command: "tests/search/test_benchmark_runs.py runs it as written, at tiny sizes" for command in README_BENCHMARKS},
    "python launch.py --objectives val_micro_f1,params --max-params 100000":
        "tests/search/test_objectives.py: --objectives val_micro_f1,params under --max-params",
    "python launch.py --space all --warm-start study":
        "tests/search/test_objectives.py runs --warm-start study; tests/spaces/test_warm_start.py enqueues every "
        "study variant into the all space",
    "python launch.py --warm-start results/<run>/best_configs.csv":
        "tests/search/test_objectives.py: its second run starts from the first run's best_configs.csv",
}
NOT_RUN_HERE = {
    "python launch.py --space all --data ~/hf_round2 --gpus-per-trial 0.5": "needs a GPU and the Hefei download",
    "python launch.py --space gru --address auto --storage-path /shared/ray": "needs a running Ray cluster",
}


def readme_commands(section: str = "## More ways to run it") -> list[str]:
    """The commands of the first bash block after `section`, without their comments."""
    text = README.read_text().split(section, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [re.split(r"\s+#\s", line)[0].strip() for line in text.splitlines() if line.strip()]


def test_the_readme_lists_exactly_the_commands_tested_here() -> None:
    assert sorted(readme_commands()) == sorted({**README_RUNS, **TESTED_ELSEWHERE, **NOT_RUN_HERE})


@pytest.mark.parametrize("command", list(README_RUNS))
def test_readme_command_runs_as_written(command: str, results: Path, cli, tmp_path_factory, request) -> None:
    run_dir, _ = run_space("ecgnet", results, cli, request)
    tmp = tmp_path_factory.mktemp("readme")
    joined = " ".join(README_RUNS[command][0])
    synth = results / "synth"
    if "{synth}" in joined and not (synth / "hf_round2_train.txt").exists():
        made = subprocess.run([sys.executable, "-m", "ecg.synthetic", "--out", str(synth), "--n", "60", "--fs", "250",
                               "--length", "2500"], cwd=cli.root, env=cli.env(), capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
    argv, expected = README_RUNS[command]
    argv = [a.format(run=run_dir, synth=synth, tmp=tmp) for a in argv]
    env = cli.env()
    if "--results-dir" in argv:  # a search: it joins the session's cluster (local Ray starts are tested above)
        cluster = request.getfixturevalue("ray_cluster")
        argv, env = [*argv, "--address", cluster.address], cluster.env
    proc = subprocess.run([sys.executable, *argv], cwd=cli.root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout + proc.stderr
