"""Warm starts (spaces.warm_start): the study's variants each space can express, read back exactly through
Optuna's enqueue_trial; best_configs.csv rows; and bad files refused in one line through launch.py."""
from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest

from ecg.models.variants import VARIANTS
from spaces import SPACES, SpaceContext, build_space
from spaces.rate import at_rate
from spaces.warm_start import (
    WarmStartError,
    at_length,
    expressible,
    read_configs_csv,
    resolve,
)

CPU = SpaceContext(gpu=False, length=2500, max_epochs=6, fs=250)  # the CPU synthetic set
GPU = SpaceContext(gpu=True, length=5000, max_epochs=60)


@pytest.mark.parametrize("ctx", [CPU, GPU], ids=["cpu", "gpu"])
@pytest.mark.parametrize("space", list(SPACES))
def test_every_kept_study_config_is_what_the_trial_runs(space: str, ctx: SpaceContext) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kept, lines = resolve("study", space, ctx)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for start, params in kept:
        study.enqueue_trial(params)
    run = build_space(space, ctx)
    for start, _ in kept:
        config = run(study.ask())
        family, options = VARIANTS[start.label.split(":")[1]]
        assert config["family"] == family and config["data/fs"] == max(ctx.rates)  # the study's full rate
        drawn = {"data/fs": max(ctx.rates), **{f"model/{k}": v for k, v in at_length(options, ctx.length).items()}}
        for key, value in at_rate(drawn, ctx).items():
            assert config[key] == value, (start.label, key)
    skipped = [line for line in lines if line.startswith("warm start: skipped")]
    assert all(": " in line.split("skipped ", 1)[1] for line in skipped)  # each says why
    same_family = [n for n, (f, _) in VARIANTS.items() if space in ("all", f)]
    assert len(kept) + len(skipped) == len(same_family)


def test_what_each_machine_keeps() -> None:
    def names(space: str, ctx: SpaceContext) -> list[str]:
        return [s.label for s, _ in resolve("study", space, ctx)[0]]

    assert names("ecgnet", CPU) == ["study:ecgnet_v1"]  # v2/v3's 3,5,7 kernel set is not a CPU choice
    assert names("ecgnet", GPU) == ["study:ecgnet_v1", "study:ecgnet_v2", "study:ecgnet_v3"]
    assert names("seresnet", CPU) == [] and names("seresnet", GPU) == ["study:seresnet50", "study:seresnet101"]
    # A segmentation is a duration: the study's 500x10 (ten 1-s steps) is 250x10 at 2,500 samples.
    kept = {s.label: p for s, p in resolve("study", "gru", CPU)[0]}
    assert kept["study:gru_v3_500x10"] == {"data/fs": 250, "model/version": "v3", "model/segmentation": "250x10"}
    assert len(resolve("study", "all", GPU)[0]) == len(VARIANTS)
    _, lines = resolve("study", "seresnet", CPU)
    assert "warm start: skipped study:seresnet50: model/depth=50 is not one of [14, 26]" in lines


def _best_configs(tmp_path: Path, **changes: str) -> Path:
    row = {"rank": "1", "trial_id": "1a2b3c4d", "best_val_micro_f1": "0.5", "family": "ecgnet",
           "model/version": "v1", "model/stem_kernel": "13", "model/kernel": "5.0", "model/width": "8",
           "model/width_1d": "16", "model/blocks_2d": "1", "model/blocks_1d": "3", "model/se_reduction": "4",
           "model/dropout": "0.25", "model/use_age_sex": "True", "model/kernels": "", "optim/lr": "0.001",
           "optim/optimizer": "adam", "optim/weight_decay": "1e-05", "optim/batch_size": "32",
           "optim/schedule": "none", "optim/class_weights": "log", "optim/epochs": "3", "optim/seed": "7", **changes}
    path = tmp_path / "best_configs.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    return path


def test_a_best_configs_row_comes_back_with_the_space_types(tmp_path) -> None:
    (start,) = read_configs_csv(_best_configs(tmp_path))
    assert start.label == "best_configs.csv:row 2" and "rank" not in start.config and "model/kernels" not in start.config
    result = expressible("ecgnet", CPU, start)
    assert result.reason is None
    assert result.params["model/kernel"] == 5 and result.params["model/width"] == 8
    assert result.params["model/use_age_sex"] is True and result.params["optim/lr"] == 0.001
    assert "optim/epochs" not in result.params  # the run's own epochs, not the file's
    wide = expressible("ecgnet", CPU, read_configs_csv(_best_configs(tmp_path, **{"model/width": "32"}))[0])
    assert wide.reason == "model/width=32 is not one of [4, 8]"
    other = expressible("gru", CPU, read_configs_csv(_best_configs(tmp_path))[0])
    assert other.reason == "family ecgnet is not space gru"


def test_unreadable_warm_start_files_name_the_row_and_column(tmp_path) -> None:
    with pytest.raises(WarmStartError, match=r"row 2, column family: 'transformer' is not a model family"):
        read_configs_csv(_best_configs(tmp_path, family="transformer"))
    (tmp_path / "nofamily.csv").write_text("rank,model/width\n1,8\n")
    with pytest.raises(WarmStartError, match=r"nofamily.csv: no 'family' column"):
        read_configs_csv(tmp_path / "nofamily.csv")
    (start,) = read_configs_csv(_best_configs(tmp_path, **{"model/stem_kernel": "wide"}))
    with pytest.raises(WarmStartError, match=r"best_configs.csv row 2, column model/stem_kernel: 'wide' is not a number"):
        expressible("ecgnet", CPU, start)


@pytest.mark.parametrize("case", ["no_family_column", "bad_number", "missing"])
def test_launch_refuses_a_bad_warm_start_file_in_one_line(case, tmp_path, capsys, monkeypatch) -> None:
    import launch

    monkeypatch.chdir(tmp_path)
    if case == "no_family_column":
        path = tmp_path / "configs.csv"
        path.write_text("rank,model/width\n1,8\n")
        expected = "configs.csv: no 'family' column"
    elif case == "bad_number":
        path = _best_configs(tmp_path, **{"optim/lr": "fast"})
        expected = "best_configs.csv row 2, column optim/lr: 'fast' is not a number"
    else:
        path, expected = tmp_path / "gone.csv", "gone.csv: no such file"
    results = tmp_path / "results"
    code = launch.main(["--warm-start", str(path), "--n-records", "20", "--results-dir", str(results)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not results.exists() or not any(results.iterdir())


@pytest.mark.parametrize("space", ["ecgnet", "gru"])
def test_a_row_built_at_a_lower_rate_warm_starts_the_same_model(space: str, tmp_path) -> None:
    # best_configs.csv holds a trial's values as its model was built at its data/fs (100 Hz here: ECGNet's stem
    # kernel and the GRU's segmentation scaled from their draws at 250 Hz); warm-started, the trial builds the same.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    first.enqueue_trial({"data/fs": 100})
    row = build_space(space, CPU)(first.ask())
    assert row["data/fs"] == 100
    csv = tmp_path / "best_configs.csv"
    pd.DataFrame([row]).to_csv(csv, index=False)
    kept, lines = resolve(str(csv), space, CPU)
    assert len(kept) == 1, lines
    again = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    again.enqueue_trial(kept[0][1])
    config = build_space(space, CPU)(again.ask())
    assert {k: v for k, v in config.items() if k.startswith(("model/", "data/"))} == \
        {k: v for k, v in row.items() if k.startswith(("model/", "data/"))}
