"""bench/gpu_check.sh --dry-run: the GPU check's steps run on the CPU at toy sizes and write every file the
GPU run writes, so the script is known to work before the first GPU machine is lent (it has no network and
no second try). Checks what it wrote, never how fast anything was. The dry run is the session's `gpu_dry_run`,
whose bench_train and bench_models steps are also those benches' smoke tests (below). They live in this file so
that the test session's parallel workers (pytest-xdist, a file per worker) run the dry run once."""
from __future__ import annotations

import csv

import pytest

STEPS = ["cuda_tests", "bench_train", "bench_models", "epochs", "search"]
VARIANTS = {"resnet50", "seresnet50", "ecgnet_v3", "gru_v3_50x100"}


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_and_writes_its_figures(gpu_dry_run) -> None:
    out, result = gpu_dry_run  # the session's one dry run (tests/bench/conftest.py)
    steps = {row["step"]: row["status"] for row in csv.DictReader((out / "steps.csv").open())}
    assert list(steps) == STEPS and set(steps.values()) == {"ok"}, (steps, result.stdout[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]

    assert "passed" in (out / "cuda_tests.txt").read_text()
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
    assert not (out / "runs").exists()  # the search's checkpoints are not kept with the figures


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
