"""CI runs every benchmark's smoke mode: the scripts must keep working and print their figures.

The figures of a smoke run are noise (toy sizes on a shared CPU); these tests check that each bench runs to
the end, prints the figures it promises and writes its files, never how fast anything was.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: int = 600, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert result.returncode == 0, f"{script} --smoke failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_bench_data_smoke_prints_parse_rate_and_cached_load(tmp_path) -> None:
    out = run_bench("bench_data.py", env={"ECG_CACHE_DIR": str(tmp_path)})
    assert "first parse" in out and "r/s" in out and "scaled to 20,000 records" in out


@pytest.mark.slow
def test_bench_synthetic_smoke_prints_speed_and_f1_against_baselines(tmp_path) -> None:
    out = run_bench("bench_synthetic.py", env={"ECG_CACHE_DIR": str(tmp_path)})
    assert "records/s" in out and "micro" in out.lower() and "prevalence" in out.lower()


@pytest.mark.slow
def test_bench_search_smoke_writes_every_figure(tmp_path) -> None:
    out_dir = tmp_path / "search"
    run_bench("bench_search.py", "--out", str(out_dir), env={"ECG_CACHE_DIR": str(tmp_path / "cache")}, timeout=900)
    for name in ("asha_vs_fifo.csv", "tpe_vs_random.csv", "overhead.csv", "trial_start.csv", "concurrency.csv",
                 "asha_fifo_curve.png", "tpe_random_curve.png", "README.md"):
        assert (out_dir / name).stat().st_size > 0, name


@pytest.mark.slow
def test_bench_thresholds_smoke_compares_rules_on_one_tiny_search(tmp_path) -> None:
    import pandas as pd

    out_dir = tmp_path / "thresholds"
    out = run_bench("bench_thresholds.py", "--runs-dir", str(tmp_path / "runs"), "--out", str(out_dir),
                    env={"ECG_CACHE_DIR": str(tmp_path / "cache")}, timeout=1200)  # a search, then its re-evaluation
    assert "rank1@0.5_micro" in out and "Goal: chosen micro-F1" in out
    table = pd.read_csv(out_dir / "thresholds.csv", dtype={"rank1_rule": str, "greedy_rule": str})  # "0.5" is a name
    assert len(table) == 1 and table["rank1_rule"].iloc[0] in ("0.5", "global", "per_class")
    assert table[["rank1@0.5_micro", "rank1@chosen_micro", "greedy@chosen_micro"]].stack().between(0, 1).all()
    assert "python bench/bench_thresholds.py --smoke" in (out_dir / "README.md").read_text()
    run = next((tmp_path / "runs").iterdir())
    assert (run / "report.html").stat().st_size > 0  # rebuilt from the re-evaluated results


@pytest.mark.slow
def test_bench_peer_smoke_runs_the_five_methods_and_writes_one_row_each(tmp_path) -> None:
    import pandas as pd

    out_dir = tmp_path / "peer"
    out = run_bench("bench_peer.py", "--out", str(out_dir), env={"ECG_CACHE_DIR": str(tmp_path / "cache")}, timeout=900)
    seeds = pd.read_csv(out_dir / "seeds.csv")
    methods = ["this_system", "optuna_hyperband", "random", "dehb", "one_epoch_topk"]
    assert sorted(seeds["method"]) == sorted(methods)
    assert (seeds[["seed", "space", "budget_min"]].drop_duplicates().values.tolist() == [[0, "gru", 1.5]])
    for name in ("summary.csv", "paired.csv", "curves.csv", "curves.png", "README.md"):
        assert (out_dir / name).stat().st_size > 0, name
    assert "this_system minus each peer" in out
    # A second call finds the piece done and runs nothing: the protocol resumes where it stopped.
    again = run_bench("bench_peer.py", "--out", str(out_dir), env={"ECG_CACHE_DIR": str(tmp_path / "cache")})
    assert "0 pieces to run (1 in" in again and len(pd.read_csv(out_dir / "seeds.csv")) == len(methods)


@pytest.mark.slow
def test_bench_predict_smoke_prints_records_per_second_for_a_single_model_and_an_ensemble(tmp_path) -> None:
    import pandas as pd

    out = run_bench("bench_predict.py", "--out", str(tmp_path / "predict"), env={"ECG_CACHE_DIR": str(tmp_path)})
    assert "records/s" in out and "ensemble" in out
    table = pd.read_csv(tmp_path / "predict" / "predict.csv")
    assert list(table["model"]) == ["single", "single+features", "ensemble"] and (table["records"] == 24).all()
    assert (table["records_per_s"] > 0).all() and "bench_predict.py --smoke" in (tmp_path / "predict" / "README.md").read_text()
