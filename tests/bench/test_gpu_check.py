"""bench/gpu_check.sh --dry-run: the GPU check's steps run on the CPU at toy sizes and write every file the
GPU run writes, so the script is known to work before the first GPU machine is lent (it has no network and
no second try). Checks what it wrote, never how fast anything was. The dry run is the session's `gpu_dry_run`,
whose bench_train and bench_models steps are also those benches' smoke tests (below). They live in this file so
that the test session's parallel workers (pytest-xdist, a file per worker) run the dry run once.

The same dry run in a clean environment holding only the lent machine's packages plus the device bundle is
bench/device_check.sh (it needs the network to build its environment and takes minutes: not a test)."""
from __future__ import annotations

import ast
import csv
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
STEPS = ["cuda_tests", "bench_train", "bench_models", "epochs", "search"]
VARIANTS = {"resnet50", "seresnet50", "ecgnet_v3", "gru_v3_50x100"}
SENT = {"summary.md", "steps.csv", "cuda_tests.txt", "models.csv", "epochs.csv", "search_trials.csv",
        "utilisation.csv", "gpu_check.tar.gz"}  # what the lent machine sends back: at most 8 files
NO_CUDA = "no CUDA device on this machine: the CUDA test set runs on a GPU machine (bench/gpu_check.sh)"


def cuda_test_names() -> set[str]:
    """The test functions of the CUDA test set (tests/gpu/), read from its source."""
    return {node.name for path in (ROOT / "tests" / "gpu").glob("test_*.py")
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_the_steps_time_limits_fit_one_command_of_the_lent_machine() -> None:
    """One command there runs at most 600 s; the steps' limits add up to at most 540 s, which leaves time to
    unpack the device bundle and start Python."""
    limits = {name: int(limit) for name, limit in re.findall(r"\bstep (\w+) (\d+) ", SCRIPT.read_text())}
    assert list(limits) == STEPS and sum(limits.values()) <= 540, limits


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_and_writes_its_figures(gpu_dry_run) -> None:
    out, result = gpu_dry_run  # the session's one dry run (tests/bench/conftest.py)
    steps = {row["step"]: row["status"] for row in csv.DictReader((out / "steps.csv").open())}
    assert list(steps) == STEPS and set(steps.values()) == {"ok"}, (steps, result.stdout[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]

    assert "fit/bare" in (out / "bench_train.txt").read_text()
    with (out / "models.csv").open() as handle:
        models = {row["variant"]: row for row in csv.DictReader(handle)}
    assert set(models) == VARIANTS and all(row["status"] == "ok" for row in models.values())
    with (out / "epochs.csv").open() as handle:
        epochs = list(csv.DictReader(handle))
    assert {row["variant"] for row in epochs} == VARIANTS and all(float(row["epoch2_s"]) > 0 for row in epochs)
    with (out / "search_trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 4 and {row["status"] for row in trials} == {"TERMINATED"}
    assert {row["device"] for row in trials} == {"cpu"}
    samples = (out / "utilisation.csv").read_text().splitlines()
    assert samples[0].startswith("timestamp") and len(samples) > 3  # one sample a second while launch.py ran
    summary = (out / "summary.md").read_text()
    assert "DRY RUN" in summary and "Epoch over 2 records" in summary
    assert "mean" in summary and "search finished" in summary
    assert all(f"| {name} | ok |" in summary for name in STEPS)
    assert not (out / "runs").exists()  # the search's checkpoints are not kept with the figures


@pytest.mark.slow
def test_the_cuda_tests_step_runs_the_cuda_test_set_it_names(gpu_dry_run) -> None:
    """Every test of tests/gpu/ was collected and reported by name (skipped here, with the reason: no CUDA),
    and the augmentation's device tests ran; not merely some test that passed."""
    out, _ = gpu_dry_run
    printed = (out / "cuda_tests.txt").read_text()
    reported = re.findall(r"^tests/gpu/test_\w+\.py::(\w+)(?:\[[^\]]*\])? (\w+)", printed, flags=re.M)
    names = cuda_test_names()
    assert len(names) >= 5 and {name for name, _ in reported} == names, (names, reported)
    assert {status for _, status in reported} == {"SKIPPED"}
    skipped = sum(int(n) for n in re.findall(rf"^SKIPPED \[(\d+)\] tests/gpu/\S+ {re.escape(NO_CUDA)}$", printed,
                                              flags=re.M))
    assert skipped == len(reported)  # each for the stated reason
    assert re.search(r"^tests/ecg/data/test_augment\.py::test_runs_on_the_tensors_device_with_either_generator"
                     r"\[cpu\] PASSED", printed, flags=re.M)
    assert re.search(rf"(\d+) passed, {len(reported) + 1} skipped", printed.splitlines()[-1])  # + augment's cuda


@pytest.mark.slow
def test_the_figures_are_sent_back_as_at_most_eight_files(gpu_dry_run) -> None:
    out, _ = gpu_dry_run
    sent = out.parent / "sent"  # OUT, as the lent machine sets it
    assert {path.name for path in sent.iterdir()} == SENT
    assert (sent / "summary.md").read_text() == (out / "summary.md").read_text()
    with tarfile.open(sent / "gpu_check.tar.gz") as archive:
        members = {Path(name).name for name in archive.getnames()}
    assert {"bench_train.txt", "bench_models.txt", "epochs.txt", "search.txt", "search_run.json"} <= members
    assert "runs" not in members


@pytest.mark.slow
def test_summary_is_written_after_every_step(tmp_path, user_env) -> None:
    """While a later step still runs, summary.md (and OUT) already hold the finished step: a check stopped at
    the lent machine's limit keeps its figures."""
    out, sent = tmp_path / "gpu", tmp_path / "sent"
    process = subprocess.Popen(["bash", str(SCRIPT), "--dry-run", "--steps", "cuda_tests,bench_models", "--out",
                                str(out)], cwd=ROOT, env={**user_env, "OUT": str(sent)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        summary = ""
        while "| cuda_tests |" not in summary and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
            summary = (out / "summary.md").read_text() if (out / "summary.md").exists() else ""
        steps = (out / "steps.csv").read_text()
        assert "| cuda_tests | ok |" in summary, summary
        assert process.poll() is None and "bench_models" not in steps  # the next step was still running
        assert "| cuda_tests | ok |" in (sent / "summary.md").read_text() and (sent / "cuda_tests.txt").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_bench_models_fails_when_a_variant_crashes(tmp_path, user_env) -> None:
    """A crashed variant is a row saying why and exit code 1, so the GPU check's step fails (GRU v3's 50 x 100
    segmentation cannot cut 7 samples: its worker raises)."""
    rows = tmp_path / "models.csv"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_models.py"), "--smoke", "--variants",
                           "gru_v3_50x100", "--length", "7", "--csv", str(rows)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=user_env)
    assert done.returncode == 1, done.stdout + done.stderr
    [row] = list(csv.DictReader(rows.open()))
    assert row["variant"] == "gru_v3_50x100" and row["status"].startswith("failed: ValueError: segmentation")
    assert "bench_models: 1 of 1 variant(s) failed: gru_v3_50x100 (failed: ValueError" in done.stderr


# bench_train.py and bench_models.py run in their smoke modes as steps of the GPU check's dry run: these two
# tests read what those steps printed.
@pytest.mark.slow
def test_bench_train_smoke_prints_fit_to_bare_ratio(gpu_dry_run) -> None:
    out, _ = gpu_dry_run
    steps = (out / "steps.csv").read_text()
    assert "bench_train,ok," in steps, steps  # `bench_train.py --smoke --device cpu` exited 0
    printed = (out / "bench_train.txt").read_text()
    assert "ratio" in printed.lower() or "fit/bare" in printed.lower()


@pytest.mark.slow
def test_bench_models_smoke_on_four_variants_prints_params_and_speed(gpu_dry_run) -> None:
    out, _ = gpu_dry_run
    steps = (out / "steps.csv").read_text()
    assert "bench_models,ok," in steps, steps  # `bench_models.py --smoke --device cpu --variants ...` exited 0
    printed = (out / "bench_models.txt").read_text()
    for variant in ("resnet50", "seresnet50", "ecgnet_v3", "gru_v3_50x100"):
        assert variant in printed, variant
