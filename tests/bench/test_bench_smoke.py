"""CI runs every benchmark's smoke mode: the scripts must keep working and print their figures.

The figures of a smoke run are noise (toy sizes on a shared CPU); these tests check that each bench runs to
the end, prints the figures it promises and writes its files with the rows its toy plan makes (the same search
behind two tables gives the same figure in both), never how fast anything was. Each runs in the session's user
environment (tests/conftest.py, `user_env`: the installed project, a HOME of the session's own) with a cache of
its own, so that a bench's first parse or generation is one.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def run_bench(env: dict[str, str], script: str, *args: str, timeout: int = 600) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{script} --smoke failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def decodes(path: Path) -> Image.Image:
    """The PNG at `path`, every pixel decoded (a truncated file raises)."""
    image = Image.open(path)
    image.load()
    assert image.format == "PNG" and image.width > 100 and image.height > 100, path
    return image


@pytest.fixture
def env(user_env, tmp_path) -> dict[str, str]:
    return {**user_env, "ECG_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.slow
def test_bench_data_smoke_prints_parse_rate_and_cached_load(env) -> None:
    out = run_bench(env, "bench_data.py")
    assert "first parse" in out and "r/s" in out and "scaled to 20,000 records" in out


@pytest.mark.slow
def test_bench_synthetic_smoke_prints_speed_and_f1_against_baselines(env) -> None:
    out = run_bench(env, "bench_synthetic.py")
    assert "records/s" in out and "micro" in out.lower() and "prevalence" in out.lower()


@pytest.mark.slow
def test_bench_search_smoke_writes_every_figure(tmp_path, env) -> None:
    """The smoke plan: 3 trials x 2 epochs, two at a time; ASHA and FIFO with the random and the TPE sampler;
    one more FIFO + random search one trial at a time for the concurrency table."""
    out_dir = tmp_path / "search"
    printed = run_bench(env, "bench_search.py", "--out", str(out_dir), timeout=900)
    trials, epochs = 3, 2
    asha = pd.read_csv(out_dir / "asha_vs_fifo.csv")
    assert asha[["sampler", "scheduler"]].values.tolist() == [["random", "asha"], ["random", "fifo"],
                                                             ["tpe", "asha"], ["tpe", "fifo"]]
    assert (asha["trials"] == trials).all()
    fifo, early = asha[asha["scheduler"] == "fifo"], asha[asha["scheduler"] == "asha"]
    assert (fifo["trial_epochs"] == trials * epochs).all()
    assert early["trial_epochs"].between(trials, trials * epochs).all()  # at least the first rung each
    # Section 2's searches are section 1's FIFO ones: best so far after each trial, ending at the same best.
    best = pd.read_csv(out_dir / "tpe_vs_random.csv")
    assert best["trials"].tolist() == list(range(1, trials + 1))
    for sampler in ("random", "tpe"):
        assert best[sampler].is_monotonic_increasing
        assert best[sampler].iloc[-1] == pytest.approx(fifo.set_index("sampler").loc[sampler, "best_val_micro_f1"])
    concurrency = pd.read_csv(out_dir / "concurrency.csv")
    assert concurrency["concurrent_trials"].tolist() == [1, 2] and (concurrency["trials"] == trials).all()
    assert concurrency["speedup"].iloc[0] == 1.0
    # Sections 3 and 4: every distinct search of the run (4 of section 1, the one-at-a-time one of section 5).
    for name in ("overhead.csv", "trial_start.csv"):
        table = pd.read_csv(out_dir / name)
        assert len(table) == 5 and (table["trials"] == trials).all(), name
    for name in ("asha_fifo_curve.png", "tpe_random_curve.png"):
        decodes(out_dir / name)
    readme = (out_dir / "README.md").read_text()
    assert "--trials 3 --epochs 2" in readme and "--smoke`" in readme
    for section in ("1. ASHA vs FIFO", "2. TPE vs random", "3. Ray overhead", "4. Trial start", "5. Concurrency"):
        assert f"### {section}" in readme and section in printed, section


@pytest.mark.slow
def test_bench_thresholds_smoke_compares_rules_on_one_tiny_search(tmp_path, env) -> None:
    out_dir = tmp_path / "thresholds"
    out = run_bench(env, "bench_thresholds.py", "--runs-dir", str(tmp_path / "runs"), "--out", str(out_dir),
                    timeout=1200)  # a search, then its re-evaluation
    assert "rank1@0.5_micro" in out and "Goal: chosen micro-F1" in out
    table = pd.read_csv(out_dir / "thresholds.csv", dtype={"rank1_rule": str, "greedy_rule": str})  # "0.5" is a name
    assert len(table) == 1
    # The table is the run's re-evaluated test results, which the bench wrote back into the run folder.
    (run,) = (tmp_path / "runs").iterdir()
    results = pd.read_csv(run / "test_results.csv", dtype={"thresholds": str})
    rank1 = results[results["model"] == "rank1"].set_index("thresholds")
    chosen = rank1[rank1["chosen"]]
    assert table["rank1_rule"].item() == chosen.index.item()
    assert table["rank1@0.5_micro"].item() == pytest.approx(rank1.loc["0.5", "test_micro_f1"])
    assert table["rank1@chosen_micro"].item() == pytest.approx(chosen["test_micro_f1"].item())
    greedy = results[(results["model"] == "ensemble_greedy") & results["chosen"]]
    assert table["greedy@chosen_micro"].item() == pytest.approx(greedy["test_micro_f1"].item())
    assert "python bench/bench_thresholds.py --smoke" in (out_dir / "README.md").read_text()
    # The report rebuilt from them: its headline is the chosen model's test micro-F1.
    report = (run / "report.html").read_text()
    assert "Chosen model on test: micro-F1 " in report


@pytest.mark.slow
def test_bench_peer_smoke_runs_the_five_methods_and_writes_one_row_each(tmp_path, env) -> None:
    """All five where the `dehb` package is installed (it cannot be a dependency: it pins numpy<2); else the bench
    refuses in one line with the command that installs it, before anything is written, and the other four run."""
    out_dir = tmp_path / "peer"
    methods = ["this_system", "optuna_hyperband", "random", "dehb", "one_epoch_topk"]
    chosen: list[str] = []
    if importlib.util.find_spec("dehb") is None:
        refused = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_peer.py"), "--smoke", "--out",
                                  str(out_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
        assert "dehb needs its package: " in refused.stderr and "pip install --no-deps dehb" in refused.stderr
        assert not out_dir.exists()
        methods.remove("dehb")
        chosen = ["--methods", *methods]
    out = run_bench(env, "bench_peer.py", "--out", str(out_dir), "--common-draws", "2", "--keep", *chosen,
                    timeout=900)
    work = Path(out.split("work folder kept: ")[1].split()[0])
    try:
        _assert_every_method_but_dehb_ran_the_common_draws_first(work, [m for m in methods if m != "dehb"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seeds = pd.read_csv(out_dir / "seeds.csv")
    assert sorted(seeds["method"]) == sorted(methods)
    assert (seeds[["seed", "space", "budget_min"]].drop_duplicates().values.tolist() == [[0, "gru", 1.5]])
    # summary.csv: per method the piece's own figures (one seed: the mean is the value).
    summary = pd.read_csv(out_dir / "summary.csv").set_index("method")
    by_method = seeds.set_index("method")
    assert sorted(summary.index) == sorted(methods) and (summary["seeds"] == 1).all()
    for column in ("best_val", "test_micro_f1", "trials", "trial_epochs"):
        assert summary[column].to_dict() == pytest.approx(by_method.loc[summary.index, column].to_dict(), nan_ok=True)
    # paired.csv: this system minus each peer, for the piece's space and budget and over all, on both scores.
    paired = pd.read_csv(out_dir / "paired.csv")
    assert len(paired) == (len(methods) - 1) * 2 * 2 and (paired["pairs"] == 1).all()
    for row in paired.itertuples():
        expected = by_method.loc["this_system", row.metric] - by_method.loc[row.peer, row.metric]
        assert row.mean_diff == pytest.approx(expected, nan_ok=True), (row.peer, row.metric)
    assert set(pd.read_csv(out_dir / "curves.csv")["method"]) <= set(methods)
    decodes(out_dir / "curves.png")
    readme = (out_dir / "README.md").read_text()
    assert "Pieces so far: 1;" in readme
    # The README says how its figures were made: the protocol's command with what this call added.
    assert f" --common-draws 2 --smoke --out {out_dir}` (one piece per call" in readme
    assert "this_system minus each peer" in out
    # A second call finds the piece done and runs nothing: the protocol resumes where it stopped.
    again = run_bench(env, "bench_peer.py", "--out", str(out_dir), "--common-draws", "2", *chosen)
    assert "0 pieces to run (1 in" in again and len(pd.read_csv(out_dir / "seeds.csv")) == len(methods)


def _assert_every_method_but_dehb_ran_the_common_draws_first(work: Path, methods: list[str]) -> None:
    """The piece's two common draws (common_draws.csv) are the first two configurations of each Optuna peer (its
    study's trials 0 and 1, enqueued) and this system's warm starts."""
    import json

    draws = pd.read_csv(work / "common_draws.csv", dtype=str, keep_default_na=False).to_dict("records")
    assert len(draws) == 2
    for method in methods:
        if method == "this_system":
            log = (work / "this_system.log").read_text()
            assert "warm start: 2 of 2 configurations of " in log, log[-2000:]
            continue
        configs = {}
        for path in work.glob(f"{method}-*.configs.jsonl"):
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                configs[entry["trial"]] = entry["config"]
        for number, draw in enumerate(draws):
            config = configs[str(number)]
            assert {k: v for k, v in draw.items() if v != ""} == {k: str(v) for k, v in config.items()}, method


@pytest.mark.slow
def test_bench_predict_smoke_prints_records_per_second_for_a_single_model_and_an_ensemble(tmp_path, env) -> None:
    import pandas as pd

    out = run_bench(env, "bench_predict.py", "--out", str(tmp_path / "predict"))
    assert "records/s" in out and "ensemble" in out
    table = pd.read_csv(tmp_path / "predict" / "predict.csv")
    assert list(table["model"]) == ["single", "single+features", "ensemble"] and (table["records"] == 24).all()
    assert (table["records_per_s"] > 0).all() and "bench_predict.py --smoke" in (tmp_path / "predict" / "README.md").read_text()
