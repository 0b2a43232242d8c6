"""What happens to a run folder where real searches live: the driver SIGKILLed and resumed (a second resume at the
same time refused), the folder copied and moved and resumed there, and real data too small or barely large
enough. Each goes through `launch.py` with a real Ray run. (Stop signals and a second writer during a run:
test_faults.py, fault 5.)"""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow

MAX_EPOCHS = 2
NUM_SAMPLES = 4


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with a hash of its bytes: what "left byte-identical" compares."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def quiet(folder: Path, seconds: float = 3.0, timeout: float = 60.0) -> None:
    """Wait until nothing under `folder` has changed for `seconds`: a killed driver's Ray workers notice their
    raylet is gone and exit within moments, and one may still finish writing a checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=0.0)
        if time.time() - newest > seconds:
            return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, cli) -> tuple[Path, set[str]]:
    """A search SIGKILLed with its local Ray (as a machine crash would) once a trial has finished: the run folder
    and the ids of the trials finished. Tests resume copies of it; the last one resumes it in place."""
    results = tmp_path_factory.mktemp("killed")
    args = [*cli.small, "--num-samples", str(NUM_SAMPLES), "--max-epochs", str(MAX_EPOCHS), "--scheduler", "fifo",
            "--top-k", "2", "--max-concurrent", "1", "--results-dir", str(results)]
    run_dir, finished = cli.kill_after_a_trial_finishes(*args, results=results, max_epochs=MAX_EPOCHS)
    quiet(run_dir)
    assert not (run_dir / "trials.csv").exists()  # the driver died before exporting
    return run_dir, finished


def copy_of(run_dir: Path, where: Path) -> Path:
    """`cp -a`, as a user copies a folder (hidden files, modes and times kept)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(run_dir), str(where)], check=True)
    return where


def assert_complete_in(run_dir: Path, cli, finished: set[str]) -> dict:
    trials = cli.read_csv(run_dir / "trials.csv")
    assert len(trials) == NUM_SAMPLES and set(trials["status"]) == {"TERMINATED"}, trials[["trial_id", "status"]]
    assert finished <= set(trials["trial_id"]) and (trials["epochs_run"] == MAX_EPOCHS).all()
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["location"] == str(run_dir.resolve())
    # What best_configs.csv and run.json name, trials.csv holds.
    assert set(cli.read_csv(run_dir / "best_configs.csv")["trial_id"]) <= set(trials["trial_id"])
    assert set(info["winners"]) <= set(trials["trial_id"])
    # Every trial's folder and checkpoint is inside this folder, and the study holds every trial.
    folders = {p.name.split("_")[2] for p in (run_dir / "tune").glob("train_trial_*")}
    assert set(trials["trial_id"]) <= folders
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.COMPLETE) == NUM_SAMPLES
    return info


def test_a_copied_and_moved_folder_resumes_in_place_and_the_original_stays_byte_identical(killed_run, cli,
                                                                                          tmp_path) -> None:
    """`cp -a` of the killed run, the copy then moved (`mv`) elsewhere: resumed where it is now, it completes
    there, writes nothing at the place it was copied to (gone) nor in the original, and records the move."""
    original, finished = killed_run
    before = tree(original)
    first = copy_of(original, tmp_path / "first" / "run")
    moved = tmp_path / "second" / "moved-run"
    moved.parent.mkdir()
    first.rename(moved)  # the place the copy's state names (`first`) no longer exists
    proc = cli.launch("--resume", str(moved))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming run folder: {moved} (moved or copied from {original.resolve()})" in proc.stdout
    assert tree(original) == before  # not one byte of the original changed, nothing was added to it
    assert not first.exists()  # nothing was written at the old place
    info = assert_complete_in(moved, cli, finished)
    assert [(r["from"], r["to"]) for r in info["relocations"]] == [(str(original.resolve()), str(moved.resolve()))]


def test_a_killed_run_resumes_in_place_rerunning_no_finished_trial_and_a_second_resume_is_refused(killed_run,
                                                                                                   cli) -> None:
    """Fault 4 of docs/reliability.md: the driver and its local Ray SIGKILLed mid-run; `--resume` completes it in
    place. Two resumes started at once (fault 13): one runs, the other is refused in one line and writes nothing."""
    run_dir, finished = killed_run
    before = {p.parent.name: p.read_text() for p in (run_dir / "tune").glob("train_trial_*/progress.csv")}
    study_before = len(cli.study_trials(run_dir))
    epochs_before = {trial_id: cli.read_csv(next((run_dir / "tune").glob(f"train_trial_{trial_id}_*/progress.csv")))
                     for trial_id in finished}
    resumes = [cli.start("--resume", str(run_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outcomes = []
    for proc in resumes:
        out, err = proc.communicate(timeout=600)
        outcomes.append((proc.returncode, out, err))
    outcomes.sort(key=lambda outcome: outcome[0])
    assert [code for code, _, _ in outcomes] == [0, 2], outcomes
    (_, stdout, stderr), (_, _, refused) = outcomes
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and f"{run_dir} is in use by pid " in lines[0], refused[-2000:]
    # The killed search left run.json `running`: the resume says how it really ended.
    assert "the last search in this folder was interrupted (the process ended without saying so)" in stdout
    assert "moved or copied" not in stdout
    info = assert_complete_in(run_dir, cli, finished)
    assert len(info["resumes"]) == 1 and "relocations" not in info  # the refused one wrote nothing
    assert info["resumes"][0]["from_status"] == "interrupted (the process ended without saying so)"
    trials, epochs = cli.read_csv(run_dir / "trials.csv"), cli.read_csv(run_dir / "epochs.csv")
    assert len(epochs) == NUM_SAMPLES * MAX_EPOCHS
    # A finished trial was not rerun: its results file is exactly as it was before the resume.
    for name, text in before.items():
        if name.split("_")[2] in finished:
            assert (run_dir / "tune" / name / "progress.csv").read_text() == text
    # The searcher did not start over: the study continues from where it was (its trials so far plus new
    # ones); a proposal made just before the kill that Ray never ran is marked FAILED.
    trials_after = cli.study_trials(run_dir)
    states = [t.state for t in trials_after]
    assert len(trials_after) >= study_before
    assert len(trials_after) - NUM_SAMPLES == states.count(optuna.trial.TrialState.FAIL)
    # Nothing lost: every trial that existed at the kill is in trials.csv, each finished one with the same
    # epochs and metrics in epochs.csv as its results held before the resume.
    assert {name.split("_")[2] for name in before} <= set(trials["trial_id"])
    for trial_id, frame in epochs_before.items():
        after = epochs[epochs["trial_id"] == trial_id]
        assert after["epoch"].tolist() == frame["epoch"].tolist()
        assert after["val_micro_f1"].tolist() == pytest.approx(frame["val_micro_f1"].tolist())


def _wfdb_subset(cinc_dir: Path, folder: Path, n: int) -> Path:
    folder.mkdir()
    for header in sorted(cinc_dir.glob("*.hea"))[:n]:
        for part in (header, header.with_suffix(".mat")):
            (folder / part.name).symlink_to(part)
    return folder


def test_twelve_real_records_search_and_end_with_every_export(cinc_dir, cli, tmp_path, ray_cluster) -> None:
    data = _wfdb_subset(cinc_dir, tmp_path / "twelve", 12)
    results = tmp_path / "results"
    proc = cli.launch("--data", str(data), "--fs", "100", "--num-samples", "2", "--max-epochs", "1",
                      "--top-k", "2", "--results-dir", str(results), "--address", ray_cluster.address,
                      env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = cli.only_run(results)
    assert cli.expected_files <= {p.name for p in run_dir.iterdir()}
    info = json.loads((run_dir / "run.json").read_text())
    split = info["data"]["split"]
    assert info["status"] == "complete" and sum(split.values()) == 12
    assert split["val"] >= 2 and split["test"] >= 1 and split["train"] >= 2  # a 7:1:2 split leaves val 1: topped up
    assert info["chosen_model"]["model"] and info["chosen_model"]["thresholds"]
    test = cli.read_csv(run_dir / "test_results.csv")
    assert test.loc[test["chosen"], "test_micro_f1"].notna().all()


def test_too_few_real_records_are_refused_before_ray_with_the_numbers(cinc_dir, cli, tmp_path) -> None:
    data = _wfdb_subset(cinc_dir, tmp_path / "four", 4)
    results = tmp_path / "results"
    proc = cli.launch("--data", str(data), "--results-dir", str(results))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("launch.py: error: ")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr[-2000:]
    assert "4 records split 2 train / 1 validation / 1 test" in errors[0]
    assert "at least 2 train, 2 validation (with a diagnosis among them) and 1 test records" in errors[0]
    assert not results.exists() and "Ray dashboard" not in proc.stdout
