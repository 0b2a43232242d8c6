"""--time-budget through launch.py with a real Ray search at tiny sizes: the search ends at its budget, complete,
with fewer trials than --num-samples and its winners evaluated on test; the trials in flight at the deadline are
labelled and recorded as stopped by the budget; a run stopped by a signal and resumed gets what is left of its
budget, not all of it again."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import optuna
import pytest

pytestmark = pytest.mark.slow

# Up to 1,000 trials of at most 3 epochs: the budget ends the search, never --num-samples.
ARGS = ("--num-samples", "1000", "--max-epochs", "3", "--grace-period", "1", "--top-k", "2", "--no-dashboard")
STOP_S = 20.0  # the most the stop may take past the deadline: Tune's step, the trials' stop, the last snapshot


def _run_json(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_the_search_ends_at_its_budget_complete_with_its_winners(tmp_path, cli) -> None:
    """README: `python launch.py --space all --time-budget 480 --num-samples 100000`, at tiny sizes."""
    results = tmp_path / "runs"
    space_all = ("--space", "all", *cli.small[cli.small.index("--space") + 2:])
    proc = cli.launch(*space_all, *ARGS, "--time-budget", "0.5", "--results-dir", str(results))
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(results)
    info = _run_json(run_dir)
    assert info["status"] == "complete" and info["args"]["time_budget"] == 0.5 and info["space"] == "all"
    assert 30.0 <= info["budget_spent_s"] <= 30.0 + STOP_S
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
    trials = cli.read_csv(run_dir / "trials.csv")
    assert 1 <= len(trials) < 1000
    assert f"the time budget of 0.5 min is spent: {len(trials)} of --num-samples 1000 trials ran" in proc.stdout
    cut = trials[trials["stopped_by_budget"]]
    assert len(cut), "no trial was in flight at the deadline"  # two 1-CPU trials run at once on this machine
    assert not cut["stopped_by_asha"].any() and (cut["epochs_run"] < 3).all()
    assert (cut["stopped_at_epoch"] == cut["epochs_run"]).all()
    assert "stopped by the time budget" in proc.stdout.splitlines()[-3]  # the closing summary counts them
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert study.user_attrs["sampler"] == "tpe (group)"  # `all`: each family's options in TPE's joint model
    states = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert not [t for t in states.values() if t.state == optuna.trial.TrialState.RUNNING]
    for row in trials[trials["epochs_run"].eq(3)].itertuples():  # trained to the end, the budget's or not
        assert states[row.trial_id].state == optuna.trial.TrialState.COMPLETE
    for row in trials[trials["stopped_by_budget"] | trials["epochs_run"].eq(0)].itertuples():
        trial = states[row.trial_id]  # PRUNED at the best value it reached, as ASHA's stops; FAIL if never trained
        if row.epochs_run:
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert trial.value == pytest.approx(row.best_val_micro_f1)
        else:
            assert trial.state == optuna.trial.TrialState.FAIL
    tested = cli.read_csv(run_dir / "test_results.csv")
    best = trials.loc[trials["best_val_micro_f1"].idxmax(), "best_val_micro_f1"]  # a stopped trial competes too
    rank1 = trials.set_index("trial_id").loc[tested.loc[tested["model"] == "rank1", "trial_id"].iloc[0]]
    assert rank1["best_val_micro_f1"] == pytest.approx(best) and tested["test_micro_f1"].notna().all()


def test_a_resumed_run_gets_what_is_left_of_its_budget(tmp_path, cli) -> None:
    results = tmp_path / "runs"
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = cli.start(*cli.small, *ARGS, "--time-budget", "0.75", "--results-dir", str(results),
                           stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None:
            time.sleep(1)
            if results.exists() and any(results.iterdir()) and cli.finished_trials(cli.only_run(results), 1):
                break  # a trial has trained an epoch: the search is spending its budget
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, log.read_text()[-3000:]
    run_dir = cli.only_run(results)
    first = _run_json(run_dir)
    assert first["status"] == "interrupted" and 0.0 < first["budget_spent_s"] < 45.0
    proc = cli.launch("--resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = _run_json(run_dir)
    assert info["status"] == "complete"
    assert 45.0 <= info["budget_spent_s"] <= 45.0 + STOP_S
    left = 45.0 - first["budget_spent_s"]
    assert left - 1.0 <= info["fit_time_s"] <= left + STOP_S  # the resumed launch trained what was left
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
