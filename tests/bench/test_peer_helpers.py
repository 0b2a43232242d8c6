"""bench_peer's arithmetic (bench/peer_stats.py) and DEHB's unit-cube view of a space (bench/peer_methods.py),
on hand-made numbers: no Ray, no training."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from peer_methods import UnitCubeTrial, cube_dimensions  # noqa: E402
from peer_stats import bootstrap_mean_interval, done_pieces, paired, protocol_command, winner  # noqa: E402


def _rows(method: str, tests: list[float], space: str = "gru", budget: float = 7.0) -> list[dict]:
    return [{"method": method, "seed": seed, "space": space, "budget_min": budget, "test_micro_f1": value,
             "best_val": value} for seed, value in enumerate(tests)]


def test_paired_difference_counts_wins_ties_losses_per_seed_and_pools_the_scopes() -> None:
    seeds = pd.DataFrame(_rows("this_system", [0.8, 0.7, 0.6]) + _rows("random", [0.7, 0.7, 0.65])
                         + _rows("this_system", [0.5], space="all") + _rows("random", [0.4], space="all"))
    table = paired(seeds).set_index(["space", "peer"])
    gru = table.loc[("gru", "random")]
    assert gru["pairs"] == 3 and (gru["wins"], gru["ties"], gru["losses"]) == (1, 1, 1)
    assert gru["mean_diff"] == pytest.approx((0.1 + 0.0 - 0.05) / 3)
    assert gru["ci90_low"] <= gru["mean_diff"] <= gru["ci90_high"]
    pooled = table.loc[("all", "random")]
    pooled = pooled[pooled["budget_min"] == "all"].iloc[0]
    assert pooled["pairs"] == 4 and pooled["mean_diff"] == pytest.approx((0.1 + 0.0 - 0.05 + 0.1) / 4)


def test_paired_leaves_out_a_seed_that_one_method_lacks() -> None:
    seeds = pd.DataFrame(_rows("this_system", [0.8, 0.7]) + _rows("dehb", [0.6, float("nan")]))
    row = paired(seeds).iloc[0]
    assert row["pairs"] == 1 and row["mean_diff"] == pytest.approx(0.2)


def test_bootstrap_interval_of_equal_values_is_that_value_and_of_nothing_is_nan() -> None:
    assert bootstrap_mean_interval([0.25, 0.25, 0.25]) == pytest.approx((0.25, 0.25, 0.25))
    assert all(math.isnan(v) for v in bootstrap_mean_interval([float("nan")]))
    mean, low, high = bootstrap_mean_interval([0.0, 1.0] * 10)
    assert mean == 0.5 and 0.25 < low < 0.45 and 0.55 < high < 0.75  # sd of the mean: 0.11


def test_done_pieces_and_winner() -> None:
    seeds = pd.DataFrame(_rows("this_system", [0.8, 0.7]) + _rows("random", [0.7, 0.7]))
    assert done_pieces(seeds) == {(0, "gru", 7.0), (1, "gru", 7.0)}
    events = pd.DataFrame({"t": [10.0, 20.0, 500.0], "trial": ["a", "b", "c"], "val_micro_f1": [0.5, 0.6, 0.9]})
    assert winner(events, budget_s=420) == ("b", 0.6)  # the epoch after the budget does not count
    assert winner(events.iloc[:0], budget_s=420)[0] is None


def test_unit_cube_trial_decodes_as_configspace_does() -> None:
    trial = UnitCubeTrial({"c": 0.99, "f": 0.0, "g": 1.0, "i": 0.5, "s": 0.74})
    assert trial.suggest_categorical("c", ["a", "b", "c"]) == "c"  # floor(0.99 * 3) = 2
    assert trial.suggest_float("f", 1e-4, 1e-2, log=True) == pytest.approx(1e-4)
    assert trial.suggest_float("g", 1e-4, 1e-2, log=True) == pytest.approx(1e-2)
    assert trial.suggest_int("i", 1, 2) == 2  # two values, each half of [0, 1]
    assert trial.suggest_int("s", 15, 75, step=10) == 15 + 5 * 10  # seven values: floor(0.74 * 7) = 5
    assert trial.used == ["c", "f", "g", "i", "s"]


def test_cube_dimensions_of_a_space_are_every_parameter_it_can_draw() -> None:
    from spaces import SpaceContext, build_space, describe

    ctx = SpaceContext(gpu=False, length=2500, max_epochs=6, fs=250)
    # Parameters the space samples in some branch (use_age_sex is also a constant in another: "= True | {...}").
    drawn = {name for name, ranges in describe("gru", ctx) if any(not r.startswith("= ") for r in ranges.split(" | "))}
    assert set(cube_dimensions(build_space("gru", ctx))) == drawn


def test_cpu_shares_cap_each_method_at_its_part_of_the_cpus_and_lift_for_the_retraining() -> None:
    from bench_peer import CpuShares

    shares = CpuShares(["a", "b", "c", "d", "e"], cpus=2)
    if shares.kind == "none":
        pytest.skip("cgroups cannot be written here: the bench then shares the CPUs per thread")
    try:
        cpu = shares.groups[0]
        assert shares.quota_us == 40_000  # 2 CPUs / 5 methods of each 100 ms period
        if shares.kind == "cgroup-v1-cap":
            assert (cpu / "a" / "cpu.cfs_quota_us").read_text().strip() == "40000"
            assert (cpu / "e" / "cpu.cfs_period_us").read_text().strip() == "100000"
            assert (cpu / "cpu.shares").read_text().strip() == str(5 * 1024)  # one default weight per method
        else:
            assert (cpu / "a" / "cpu.max").read_text().split() == ["40000", "100000"]
        assert shares.cpu_s("a") == 0.0 and shares.throttled_s("a") == 0.0  # nothing in it yet
        shares.cap(False)
        if shares.kind == "cgroup-v1-cap":
            assert (cpu / "a" / "cpu.cfs_quota_us").read_text().strip() == "-1"
        else:
            assert (cpu / "a" / "cpu.max").read_text().split()[0] == "max"
    finally:
        shares.close()
    assert not any(group.exists() for group in shares.groups)


def test_a_second_cpu_share_beside_a_first_that_outlived_its_launch_is_capped_too() -> None:
    """--ray-cost measures launch after launch in one process: a group whose last process has not gone yet stays,
    and the next launch's group must still be made and capped (it had the same name, so that launch ran uncapped)."""
    from bench_peer import CpuShares

    first = CpuShares(["this_system"], cpus=0.4)
    if first.kind == "none":
        pytest.skip("cgroups cannot be written here: the bench then shares the CPUs per thread")
    second = CpuShares(["this_system"], cpus=0.4)
    try:
        assert second.kind == first.kind and second.groups[0] != first.groups[0]
        assert second.quota_us == 40_000 and second.cpu_s("this_system") == 0.0
    finally:
        second.close()
        first.close()


def test_a_ray_cost_variant_may_lead_with_environment_variables() -> None:
    from peer_raycost import split_env

    assert split_env(["RAY_enable_metrics_collection=0", "X=a=b", "--no-dashboard", "--seed=1"]) == (
        {"RAY_enable_metrics_collection": "0", "X": "a=b"}, ["--no-dashboard", "--seed=1"])
    assert split_env(["--no-dashboard"]) == ({}, ["--no-dashboard"])


def test_the_protocol_command_names_every_seed_budget_and_space_that_seeds_csv_holds() -> None:
    seeds = pd.DataFrame(_rows("this_system", [0.8, 0.7, 0.6]) + _rows("random", [0.5], space="all", budget=14.0))
    both = ("this_system", "random")
    assert protocol_command(seeds, both) == ("python bench/bench_peer.py --seeds 3 --budgets 7 14 --spaces gru all "
                                             "--pieces 1")
    alone = pd.DataFrame(_rows("random", [0.5]))
    assert protocol_command(alone, both).endswith("--spaces gru --pieces 1 --methods random")


def test_peer_chosen_counts_where_each_methods_trial_epochs_went(tmp_path: Path) -> None:
    import json

    from peer_chosen import trials_of, where_epochs_went

    # Two optuna_hyperband trials (3 epochs at 100 Hz of 0.5 s, 1 epoch at 250 Hz of 2.0 s) and one random trial.
    (tmp_path / "optuna_hyperband-0.events.csv").write_text(
        "1.0,0,1,0.5,0.5\n2.0,0,2,0.6,0.5\n3.0,0,3,0.7,0.6\n4.0,1,1,0.4,2.0\n")
    (tmp_path / "optuna_hyperband-0.configs.jsonl").write_text("".join(
        json.dumps({"trial": trial, "config": {"data/fs": fs}}) + "\n" for trial, fs in ((0, 100), (1, 250))))
    (tmp_path / "random-0.events.csv").write_text("1.0,7,1,0.3,1.5\n")
    (tmp_path / "random-0.configs.jsonl").write_text(json.dumps({"trial": 7, "config": {"data/fs": 250}}) + "\n")
    trials = trials_of(tmp_path)
    assert sorted(zip(trials["method"], trials["trial"], trials["epochs"])) == [
        ("optuna_hyperband", "0", 3), ("optuna_hyperband", "1", 1), ("random", "7", 1)]
    assert trials.set_index("trial").loc["0", "best_val"] == pytest.approx(0.7)
    table = where_epochs_went(trials, params=("data/fs",)).set_index(["method", "value"])
    assert table.loc[("optuna_hyperband", "100"), "epoch_share"] == 0.75
    assert table.loc[("optuna_hyperband", "100"), "median_epoch_s"] == 0.5
    assert table.loc[("optuna_hyperband", "250"), "epoch_share"] == 0.25
    assert table.loc[("random", "250"), "epoch_share"] == 1.0


def _method_folder(folder: Path, method: str, tests: list[float]) -> Path:
    """A bench_peer --out folder of one method run alone: seeds.csv (every column the summary reads) and
    curves.csv."""
    from peer_stats import SEEDS_COLUMNS

    folder.mkdir(parents=True)
    rows = [{**{c: 1.0 for c in SEEDS_COLUMNS}, **row, "cpu_share": "cgroup-v1-cap", "winner": "ab12", "code": "x"}
            for row in _rows(method, tests)]
    pd.DataFrame(rows, columns=SEEDS_COLUMNS).to_csv(folder / "seeds.csv", index=False)
    pd.DataFrame([{"t": 10.0 + s, "best": v, "method": method, "seed": s, "space": "gru", "budget_min": 7.0}
                  for s, v in enumerate(tests)]).to_csv(folder / "curves.csv", index=False)
    return folder


def _bench_peer(*args: str) -> "subprocess.CompletedProcess[str]":
    import subprocess

    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, str(root / "bench" / "bench_peer.py"), *args], cwd=root,
                          capture_output=True, text=True, timeout=120)


def test_gather_summarizes_methods_run_alone_from_their_own_folders(tmp_path: Path) -> None:
    this = _method_folder(tmp_path / "this_system", "this_system", [0.90, 0.80, 0.70])
    peer = _method_folder(tmp_path / "random", "random", [0.85, 0.85, 0.70])
    out = tmp_path / "all"
    done = _bench_peer("--summarize", "--gather", str(this), str(peer), "--out", str(out))
    assert done.returncode == 0, done.stderr
    seeds = pd.read_csv(out / "seeds.csv")
    assert sorted(zip(seeds["method"], seeds["seed"])) == sorted([(m, s) for m in ("random", "this_system")
                                                                  for s in range(3)])
    assert len(pd.read_csv(out / "curves.csv")) == 6 and (out / "curves.png").stat().st_size > 0
    pairs = pd.read_csv(out / "paired.csv")
    test = pairs[(pairs["metric"] == "test_micro_f1") & (pairs["space"] == "gru")].iloc[0]
    assert test["peer"] == "random" and test["mean_diff"] == pytest.approx(0.0)  # +0.05, -0.05, 0
    assert (test["wins"], test["ties"], test["losses"]) == (1, 1, 1)
    readme = (out / "README.md").read_text()
    assert f"Gathered from `{this}`, `{peer}`" in readme and "--summarize --gather" in readme
    # A later --summarize alone redraws the same gathered summary: the sources stay named.
    assert _bench_peer("--summarize", "--out", str(out)).returncode == 0
    assert f"Gathered from `{this}`, `{peer}`" in (out / "README.md").read_text()


@pytest.mark.parametrize("case", ["no seeds.csv", "the same piece twice", "--out among them", "without --summarize"])
def test_gather_refuses_in_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    this = _method_folder(tmp_path / "this_system", "this_system", [0.9])
    out = tmp_path / "all"
    other, message = {
        "no seeds.csv": ((tmp_path / "empty"), f"--gather {tmp_path / 'empty'}: no seeds.csv there"),
        "the same piece twice": (_method_folder(tmp_path / "again", "this_system", [0.8]),
                                 "--gather: this_system seed 0 at 7 min on gru is in two of the folders"),
        "--out among them": (out, f"--gather {out}: that is --out itself"),
        "without --summarize": (tmp_path / "x", "--gather only applies with --summarize"),
    }[case]
    other.mkdir(exist_ok=True)
    summarize = [] if case == "without --summarize" else ["--summarize"]
    done = _bench_peer(*summarize, "--gather", str(this), str(other), "--out", str(out))
    assert done.returncode == 2, done.stdout
    last = done.stderr.splitlines()[-1]
    assert last.startswith("bench_peer.py: error: ") and message in last, done.stderr
    if case != "without --summarize":  # argparse's own refusals print the usage first
        assert done.stderr.count("\n") == 1, done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_plan_runs_a_piece_side_by_side_or_each_method_alone_in_the_order_that_rotates_with_the_seed() -> None:
    import argparse

    from bench_peer import plan

    methods = ["this_system", "random", "dehb"]
    args = argparse.Namespace(seeds=2, spaces=["gru"], budgets=[7], methods=methods, alone=False)
    held = pd.DataFrame(_rows("this_system", [0.9]) + _rows("random", [0.8]) + _rows("dehb", [0.7]))
    assert plan(args, held) == [(1, "gru", 7.0, tuple(methods))]  # seed 0 is in seeds.csv
    args.alone = True
    alone_held = pd.DataFrame(_rows("random", [0.8]))  # seed 0: random ran; the others did not yet
    # gru is SPACES[0]: seed 0 runs in the order given, seed 1 rotated by one.
    assert plan(args, alone_held) == [(0, "gru", 7.0, ("this_system",)), (0, "gru", 7.0, ("dehb",)),
                                      (1, "gru", 7.0, ("random",)), (1, "gru", 7.0, ("dehb",)),
                                      (1, "gru", 7.0, ("this_system",))]


def test_a_folder_holds_one_condition_and_its_readme_names_the_call_that_ran_it(tmp_path: Path) -> None:
    import json

    side = _method_folder(tmp_path / "side", "this_system", [0.9])  # pieces without condition.json: side by side
    refused = _bench_peer("--alone", "--methods", "this_system", "random", "--seeds", "1", "--pieces", "1",
                          "--out", str(side))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"bench_peer.py: error: {side} holds pieces run side by side; run pieces alone into another --out" \
        in refused.stderr
    assert sorted(p.name for p in side.iterdir()) == ["curves.csv", "seeds.csv"]  # nothing written
    alone = _method_folder(tmp_path / "alone", "this_system", [0.9, 0.8])
    pd.concat([pd.read_csv(alone / "seeds.csv"), pd.read_csv(_method_folder(tmp_path / "r", "random", [0.7, 0.8])
                                                             / "seeds.csv")]).to_csv(alone / "seeds.csv", index=False)
    (alone / "condition.json").write_text(json.dumps({"condition": "alone"}))
    assert _bench_peer("--summarize", "--alone", "--out", str(alone)).returncode == 0
    readme = (alone / "README.md").read_text()
    assert (f"Command: `python bench/bench_peer.py --seeds 2 --budgets 7 --spaces gru --pieces 1 --methods "
            f"this_system random --alone --out {alone}` (one piece per call, each call the next piece: one method "
            f"alone on the machine, the methods in turn; `python bench/bench_peer.py --summarize --alone --out "
            f"{alone}` redraws this)") in readme


@pytest.mark.parametrize("space", ["gru", "all"])
def test_common_draws_are_the_first_configs_of_this_system_and_of_an_optuna_peer(space: str, tmp_path: Path) -> None:
    """The same draws reach both: launch.py's warm start reads the CSV rows back as the same study parameters,
    and a peer's study, enqueued, hands its first trials the same flat configs."""
    import argparse
    from types import SimpleNamespace

    import optuna

    from peer_methods import common_draws, space_over
    from spaces import SpaceContext
    from spaces.warm_start import resolve

    args = argparse.Namespace(space=space, epochs=6, seed=3)
    split = SimpleNamespace(train=SimpleNamespace(n_samples=2500), fs=250)
    draws = common_draws(space_over(args, split), args.seed, 4)
    assert len({json_key(flat) for _, flat in draws}) == 4  # four different configurations
    assert common_draws(space_over(args, split), args.seed, 4) == draws  # a function of the seed
    assert common_draws(space_over(args, split), args.seed + 1, 4) != draws
    csv = tmp_path / "common_draws.csv"
    pd.DataFrame([flat for _, flat in draws]).to_csv(csv, index=False)
    # launch.py's context for the same data, seed and epochs (search.options.space_context).
    kept, lines = resolve(str(csv), space, SpaceContext(gpu=False, length=2500, max_epochs=6, seed=3,
                                                        metric="val_micro_f1", fs=250))
    assert lines[-1].startswith(f"warm start: 4 of 4 configurations of {csv} fit space {space}"), lines
    assert [params for _, params in kept] == [params for params, _ in draws]
    study = optuna.create_study(direction="maximize")
    for params, _ in draws:
        study.enqueue_trial(params)
    space_fn = space_over(args, split)
    firsts = []
    for _ in draws:
        trial = study.ask()
        firsts.append(space_fn(trial))
        study.tell(trial, 0.5)
    assert firsts == [flat for _, flat in draws]


def json_key(config: dict) -> str:
    import json

    return json.dumps(config, sort_keys=True, default=str)


def test_a_folder_refuses_pieces_with_other_common_draws(tmp_path: Path) -> None:
    folder = _method_folder(tmp_path / "side", "this_system", [0.9])
    refused = _bench_peer("--common-draws", "10", "--methods", "this_system", "random", "--seeds", "1",
                          "--pieces", "1", "--out", str(folder))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert (f"{folder} holds pieces run side by side; run pieces side by side with 10 common draws into another "
            "--out") in refused.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["curves.csv", "seeds.csv"]
    negative = _bench_peer("--common-draws", "-1", "--out", str(folder))
    assert negative.returncode == 2 and "--common-draws must be 0 or more, got -1" in negative.stderr
