"""Every space through `launch.py` and a real Ray run: 120 synthetic records, 2 trials. The ECGNet run is the
session's shared search (`finished_run`, tests/search/conftest.py: a local Ray started as a user starts it); the
other spaces join one `ray start` cluster that the test session shares (`ray_cluster` in conftest.py), so each
does not pay a Ray start of its own.

Two of the runs train 3 epochs under another selection metric and check that each trial kept (checkpointed)
the epoch that metric picks; the ECGNet run's winner is then retrained with the README's `python -m ecg.train`
command from its run folder and must reproduce its trial's validation metric. The `all` run's searcher, with
its space inside, is saved for --resume (a killed run is resumed by tests/search/test_run_folder_events.py).
"""
from __future__ import annotations

import json
import math
import pickle
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from ecg.models import create_model, model_options
from ecg.train import TrialConfig, load_checkpoint
from spaces import FAMILY_SPACES, SPACES
from tests.search.conftest import FINISHED_ARGS
from tests.search.test_benchmark_runs import README_BENCHMARKS

pytestmark = pytest.mark.slow

TINY = ("--n-records", "120", "--cpus-per-trial", "1", "--seed", "0", "--top-k", "2")
# Space -> its options (2 trials unless said). The metric runs train 3 epochs without early stopping, so the
# kept epoch can differ from the last one and from the micro-F1 one. ECGNet: the shared search's options.
RUNS = {
    "ecgnet": FINISHED_ARGS,
    "resnet": ("--max-epochs", "3", "--scheduler", "fifo", "--metric", "val_loss"),
    "resnext": ("--max-epochs", "1", "--grace-period", "1"),
    "seresnet": ("--max-epochs", "3", "--scheduler", "fifo", "--metric", "val_macro_auc"),
    "lstm": ("--max-epochs", "1", "--grace-period", "1"),
    "gru": ("--max-epochs", "1", "--grace-period", "1"),
    "hybrid": ("--max-epochs", "1", "--grace-period", "1"),
    "all": ("--max-epochs", "1", "--grace-period", "1"),
}
_runs: dict[str, tuple[Path, str]] = {}


def run_space(space: str, results: Path, cli, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """The run folder of `space`'s tiny search and what launch.py printed (run once per test session)."""
    if space == "ecgnet":
        finished = request.getfixturevalue("finished_run")
        return finished.run_dir, finished.stdout
    if space not in _runs:
        trials = () if "--num-samples" in RUNS[space] else ("--num-samples", "2")
        cluster = request.getfixturevalue("ray_cluster")
        proc = cli.launch("--space", space, *TINY, *trials, *RUNS[space], "--results-dir", str(results / space),
                          "--address", cluster.address, env=cluster.env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _runs[space] = cli.only_run(results / space), proc.stdout
    return _runs[space]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spaces")


def _option(args: tuple[str, ...], name: str, default: str) -> str:
    return args[args.index(name) + 1] if name in args else default


@pytest.mark.parametrize("space", list(SPACES))
def test_space_runs_end_to_end_and_exports_everything(space: str, results: Path, cli, request) -> None:
    run_dir, stdout = run_space(space, results, cli, request)
    assert run_dir.name.startswith(f"{space}-")
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
    assert "Test results" in stdout and stdout.strip().endswith(f"results in {run_dir}")
    metric = _option(RUNS[space], "--metric", "val_micro_f1")
    epochs_per_trial = int(_option(RUNS[space], "--max-epochs", "1"))
    top_k = int(_option(RUNS[space], "--top-k", _option(TINY, "--top-k", "")))

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
    assert best["trial_id"].tolist() == ranked[:top_k]
    assert TrialConfig.from_csv(run_dir / "best_configs.csv").family in families
    # The winners, their mean and the greedy ensemble, each under three threshold rules, scored on the split's
    # test records; per-class rows for each of the 26 classes.
    split = pd.read_csv(run_dir / "split.csv")
    assert len(split) == 120
    test = cli.read_csv(run_dir / "test_results.csv")
    models = [*(f"rank{k}" for k in range(1, top_k + 1)), "ensemble_topk", "ensemble_greedy"]
    assert test["model"].tolist() == [m for m in models for _ in range(3)]
    assert test["test_micro_f1"].between(0, 1).all()
    assert (test["n_test_records"] == (split["split"] == "test").sum()).all()
    per_class = pd.read_csv(run_dir / "per_class.csv")
    assert len(per_class) == len(test) * 26

    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["args"]["space"] == space and info["args"]["metric"] == metric
    joined = None if space == "ecgnet" else request.getfixturevalue("ray_cluster").address
    assert info["args"]["address"] == joined  # a local Ray of its own, or the shared cluster
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert sorted(t.value for t in finished) == pytest.approx(sorted(trials[f"best_{metric}"]))


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


def test_the_all_space_searcher_is_saved_with_its_space_for_resume(results: Path, cli, request) -> None:
    """What --resume gives back to Ray for `--space all`: the searcher's saved state holds the space itself,
    which, asked again, samples a family and only that family's qualified options (the SIGKILL-and-resume
    of a run is tests/search/test_run_folder_events.py's)."""
    run_dir, _ = run_space("all", results, cli, request)
    states = sorted((run_dir / "tune").glob("searcher-state-*.pkl"))
    assert states, "Ray saved no searcher state"
    saved = pickle.loads(states[-1].read_bytes())  # a file this test's own search wrote
    (space,) = [v for v in saved.values() if callable(v) and getattr(v, "__module__", "").startswith("spaces")]
    for seed in range(5):
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        constants = space(trial)
        family = trial.params["family"]
        assert family in FAMILY_SPACES and constants.get("family", family) == family
        assert {p.split("/")[0] for p in trial.params if p.count("/") == 2} == {family}
    # Every study trial of the run sampled a family and only that family's qualified options.
    for trial in cli.study_trials(run_dir):
        assert {p.split("/")[0] for p in trial.params if p.count("/") == 2} <= {trial.params["family"]}


def test_a_winner_retrained_from_its_run_folder_reproduces_its_trial(results: Path, cli, tmp_path, request) -> None:
    """The README's retrain command (`--epochs` as many as the trial had) on the run's own records and split."""
    run_dir, _ = run_space("ecgnet", results, cli, request)
    best = cli.read_csv(run_dir / "best_configs.csv")
    epochs = str(TrialConfig.from_csv(run_dir / "best_configs.csv").optim.epochs)
    out = tmp_path / "retrain"
    proc = subprocess.run([sys.executable, "-m", "ecg.train", "--config-csv", str(run_dir / "best_configs.csv"),
                           "--row", "0", "--epochs", epochs, "--out", str(out)], cwd=tmp_path, env=cli.env(),
                          text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = pd.read_csv(run_dir / "split.csv")["split"].value_counts()
    assert f"run {run_dir}" in proc.stderr
    assert f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test" in proc.stderr
    assert "synthetic(n=120, seed=0, fs=250, length=2500)" in proc.stderr
    assert proc.stdout.strip().endswith(f"written to {out}")
    # The same records in the same split as the run ...
    assert pd.read_csv(out / "split.csv").equals(pd.read_csv(run_dir / "split.csv"))
    # ... and the trial's validation metric, epoch for epoch.
    metrics = pd.read_csv(out / "metrics.csv")
    trial_epochs = cli.read_csv(run_dir / "epochs.csv")
    trial_epochs = trial_epochs[trial_epochs["trial_id"] == best["trial_id"][0]]
    assert len(metrics) == int(epochs) == len(trial_epochs)
    assert metrics["val_micro_f1"].tolist() == pytest.approx(trial_epochs["val_micro_f1"].tolist(), abs=1e-6)
    assert metrics["val_micro_f1"].max() == pytest.approx(best["best_val_micro_f1"][0], abs=1e-6)


# --- The README's "More ways to run it", each command as written, at tiny sizes -------------------------------
README = Path(__file__).resolve().parents[2] / "README.md"
SYNTHETIC = dict(n=60, seed=0)  # the records `python -m ecg.synthetic` writes here (the Hefei layout's 500 Hz)


@dataclass
class Ran:
    """A README command that ran: how it ended and the paths its arguments named."""

    proc: subprocess.CompletedProcess
    tmp: Path
    synth: Path
    request: pytest.FixtureRequest


def lists_every_space(ran: Ran) -> None:
    """The listing `launch.main(["--list-spaces"])` prints (tests/search/test_launch_cli.py checks its content)."""
    capsys = ran.request.getfixturevalue("capsys")
    assert ran.request.getfixturevalue("launch").main(["--list-spaces"]) == 0
    assert ran.proc.stdout == capsys.readouterr().out and "gru/model/version" in ran.proc.stdout


def writes_the_hefei_layout(ran: Ran) -> None:
    """A label file and a class list in the Hefei layout, and one text file per record that reads back as the
    generated signals."""
    from ecg.data import load_dataset
    from ecg.synthetic import generate

    made = generate(SYNTHETIC["n"], SYNTHETIC["seed"])
    assert ran.proc.stderr.startswith(f"wrote 60 records (8 leads, {made.n_classes} classes) to {ran.synth} in ")
    assert len((ran.synth / "ecg_train.txt").read_text().splitlines()) == 60
    assert len((ran.synth / "ecg_arrythmia.txt").read_text().splitlines()) == made.n_classes
    assert len(list((ran.synth / "ecg_train").glob("*.txt"))) == 60
    with warnings.catch_warnings():  # 60 records leave some classes empty; the reader says so, rightly
        warnings.simplefilter("ignore", UserWarning)
        back = load_dataset(ran.synth, use_cache=False)
    order = [back.record_ids.index(r) for r in made.record_ids]
    assert np.array_equal(back.signals[order], made.signals)


def counts_each_diagnosis(ran: Ran) -> None:
    """The record count and, for every class, its records and their train/val/test split: the generated
    labels' counts, each split adding up."""
    from ecg.synthetic import generate

    made = generate(SYNTHETIC["n"], SYNTHETIC["seed"])
    lines = ran.proc.stdout.splitlines()
    assert lines[0] == "records: 60  (signal files present: 60)"
    rows = [line.split(None, 5) for line in lines[lines.index(next(l for l in lines if l.startswith("index"))) + 1:]]
    table = {row[5]: [int(v) for v in row[1:5]] for row in rows[:made.n_classes]}
    assert {name: counts[0] for name, counts in table.items()} == dict(zip(made.class_names,
                                                                           made.labels.sum(axis=0).tolist()))
    assert all(total == train + val + test for total, train, val, test in table.values())
    split = re.search(r"^split: train (\d+) \(.*\), val (\d+) \(.*\), test (\d+) \(", ran.proc.stdout, re.M)
    assert split and sum(map(int, split.groups())) == 60


def draws_the_diagnoses_figure(ran: Ran) -> None:
    """A PNG that decodes, the size of the figure's grid: a panel per diagnosis, 4 to a row (its panels are
    checked by tests/ecg/synthetic/test_cache_cli_plot.py)."""
    from PIL import Image

    from ecg.synthetic import plot
    from ecg.synthetic.diagnoses import SYNTHETIC_CLASSES

    out = ran.tmp / "diagnoses.png"
    assert ran.proc.stdout.strip() == str(out)
    image = Image.open(out)
    image.load()  # every pixel decodes: a truncated file raises here
    rows, seconds = math.ceil(len(SYNTHETIC_CLASSES) / 4), 3.0
    width_in = seconds * plot.MM_PER_S / 25.4 * 1.08 * 4
    height_in = ((8 * plot.LEAD_SPACING_MV + plot.LEAD_SPACING_MV / 2) * plot.MM_PER_MV / 25.4 * 1.08 + 0.3) * rows
    assert image.format == "PNG" and image.size == pytest.approx((width_in * 100, height_in * 100), abs=1)


def keeps_the_pareto_front(ran: Ran) -> None:
    """Trials over the latency budget rejected before training; pareto.csv exactly the trained trials that no
    other trained trial beats on both micro-F1 and latency; the winner the front's first."""
    from tests.search.conftest import SearchCLI

    run_dir = SearchCLI.only_run(ran.tmp / "results")
    trials = SearchCLI.read_csv(run_dir / "trials.csv")
    over = trials["latency_ms_b1"] > 5
    assert (trials.loc[over, "status"] == "OVER_BUDGET").all() and (trials.loc[~over, "status"] == "TERMINATED").all()
    trained = trials[~over]
    values = trained[["best_val_micro_f1", "latency_ms_b1"]].to_numpy(float)
    beaten = [any(o[0] >= v[0] and o[1] <= v[1] and (o[0] > v[0] or o[1] < v[1]) for o in values) for v in values]
    front = SearchCLI.read_csv(run_dir / "pareto.csv")
    assert sorted(front["trial_id"]) == sorted(trained.loc[~np.array(beaten, dtype=bool), "trial_id"])
    assert front["best_val_micro_f1"].is_monotonic_decreasing
    assert SearchCLI.read_csv(run_dir / "best_configs.csv")["trial_id"].tolist() == front["trial_id"].tolist()[:1]
    assert ran.proc.stdout.strip().endswith(f"results in {run_dir}")


def trains_with_the_features(ran: Ran) -> None:
    """A ResNet with every hand-made feature set, trained the epoch asked and scored on test: its config.csv
    says so and the model it saved takes the features."""
    out = ran.tmp / "featured"
    assert ran.proc.stdout.strip().endswith(f"written to {out}")
    config = pd.read_csv(out / "config.csv")
    assert (config["family"].item(), config["model/features"].item(), config["optim/epochs"].item()) == ("resnet",
                                                                                                        "both", 1)
    assert len(pd.read_csv(out / "metrics.csv")) == 1
    assert set(pd.read_csv(out / "test_metrics.csv")["thresholds"].astype(str)) == {"0.5", "global", "per_class"}


# What each command becomes here: the same entry point and options, with tiny sizes and temporary paths (a search
# joins the session's `ray start` cluster), and what it must produce. {synth}: the Hefei-layout folder the
# synthetic command writes; {tmp}: the test's own folder.
README_RUNS = {
    "python launch.py --list-spaces": (["launch.py", "--list-spaces"], lists_every_space),
    "python -m ecg.synthetic --out /tmp/synth --n 2000 --seed 0":
        (["-m", "ecg.synthetic", "--out", "{synth}", *(f"--{k}={v}" for k, v in SYNTHETIC.items())],
         writes_the_hefei_layout),
    "python -m ecg.inspect ~/hf_round2": (["-m", "ecg.inspect", "{synth}"], counts_each_diagnosis),
    "python -m ecg.synthetic.plot --out docs/synthetic_diagnoses.png":
        (["-m", "ecg.synthetic.plot", "--out", "{tmp}/diagnoses.png", "--n", "200"], draws_the_diagnoses_figure),
    "python launch.py --objectives val_micro_f1,latency_ms --max-latency-ms 5":
        (["launch.py", "--objectives", "val_micro_f1,latency_ms", "--max-latency-ms", "5", "--n-records", "120",
          "--num-samples", "2", "--max-epochs", "1", "--top-k", "1", "--results-dir", "{tmp}/results"],
         keeps_the_pareto_front),
    "python -m ecg.train --family resnet --model features=both --epochs 5":
        (["-m", "ecg.train", "--family", "resnet", "--model", "features=both", "--epochs", "1", "--n-records", "120",
          "--fs", "100", "--length", "1000", "--out", "{tmp}/featured"], trains_with_the_features),
}
# Run through launch.py and Ray by another test, with the same options at tiny sizes.
TESTED_ELSEWHERE = {
    **{command: "tests/search/test_benchmark_runs.py runs it as written, at tiny sizes" for command in README_BENCHMARKS},
    "python launch.py --resume results/ecgnet-20261125-101500":
        "tests/search/test_safety.py resumes a complete run (nothing to do, nothing changed); "
        "tests/search/test_run_folder_events.py resumes a killed one, moved and copied ones",
    "python launch.py --space all --time-budget 480 --num-samples 100000":
        "tests/search/test_budget_runs.py: --space all with --time-budget 0.5 and --num-samples 1000 ends at its "
        "budget, complete; a resumed run gets what is left",
    "python -m ecg.train --config-csv results/<run>/best_configs.csv --row 0 --epochs 200":
        "test_a_winner_retrained_from_its_run_folder_reproduces_its_trial above, with the trial's own epochs",
    "python launch.py --objectives val_micro_f1,params --max-params 100000":
        "tests/search/test_objectives.py: --objectives val_micro_f1,params under --max-params",
    "python launch.py --space all --warm-start study":
        "tests/search/test_objectives.py runs --warm-start study; tests/spaces/test_warm_start.py enqueues every "
        "study variant into the all space",
    "python launch.py --warm-start results/<run>/best_configs.csv":
        "tests/search/test_objectives.py: its second run starts from the first run's best_configs.csv",
    "python -m ecg.predict results/<run> --data ~/new_ecgs":
        "tests/ecg/predict/test_predict_cli.py: new records in every format, at each member's rate, on a search's run",
    "python -m ecg.predict results/<run> --export model/ --onnx":
        "tests/ecg/predict/test_predict_cli.py: a package that predicts identically once the run folder is gone, "
        "ONNX graphs matching PyTorch",
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
def test_readme_command_runs_as_written(command: str, results: Path, cli, tmp_path, request) -> None:
    """Each command from where the README runs it: launch.py from the repository's root, a module (`-m`) from
    anywhere (the installed package), in the session's user environment."""
    synth = results / "synth"
    argv, check = README_RUNS[command]
    if "{synth}" in " ".join(argv) and "ecg.synthetic" not in argv and not (synth / "ecg_train.txt").exists():
        made = subprocess.run([sys.executable, "-m", "ecg.synthetic", "--out", str(synth),
                               *(f"--{k}={v}" for k, v in SYNTHETIC.items())], cwd=tmp_path, env=cli.env(),
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr
    argv = [a.format(synth=synth, tmp=tmp_path) for a in argv]
    env = cli.env()
    if "--results-dir" in argv:  # a search: it joins the session's cluster (local Ray starts are tested above)
        cluster = request.getfixturevalue("ray_cluster")
        argv, env = [*argv, "--address", cluster.address], cluster.env
    proc = subprocess.run([sys.executable, *argv], cwd=cli.root if argv[0] == "launch.py" else tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check(Ran(proc, tmp_path, synth, request))
