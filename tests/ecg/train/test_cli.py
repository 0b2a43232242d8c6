"""python -m ecg.train end to end on a small synthetic set, and its argument handling."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ecg.train import TrialConfig, load_checkpoint
from ecg.train.__main__ import build_parser, main, trial_from_args

SMALL = ["--n-records", "160", "--length", "1000", "--batch-size", "32", "--threads", "1"]


# 160 synthetic records leave some of the 26 classes too rare to reach every split; the split warns, rightly.
@pytest.mark.filterwarnings("ignore:class index")
def test_cli_trains_evaluates_and_writes_everything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["--family", "gru", "--model", "hidden=8", "--model", "fc_hidden=8", "--epochs", "2",
                 "--lr", "3e-3", "--out", str(out), "--at-least-one", *SMALL]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]
    assert {"train_loss", "val_micro_f1", "val_macro_auc", "lr"} <= set(metrics.columns)
    test = pd.read_csv(out / "test_metrics.csv")
    # The winners' rules (search.winners scores the same way), each also with at least one label per record.
    rules = ["0.5", "global", "per_class"]
    assert test["thresholds"].tolist() == rules + [f"{r}+at_least_one" for r in rules]
    assert test["chosen"].sum() == 1 and test.loc[test["chosen"], "thresholds"].item() in rules
    assert test[["test_micro_f1", "test_exact_match", "test_loss", "val_micro_f1"]].notna().all().all()
    thresholds = pd.read_csv(out / "thresholds.csv", dtype={"rule": str})
    assert set(thresholds["rule"]) == {test.loc[test["chosen"], "thresholds"].item()}
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == 6 * len(thresholds)
    split = pd.read_csv(out / "split.csv")
    assert len(split) == 160
    best = load_checkpoint(out / "best")
    assert best["meta"]["family"] == "gru" and best["meta"]["model"] == {"hidden": 8, "fc_hidden": 8}
    assert best["meta"]["thresholds"] == pytest.approx(thresholds["threshold"].tolist())
    assert load_checkpoint(out / "checkpoint")["meta"]["epoch"] == 2
    config = TrialConfig.from_csv(out / "config.csv")
    assert config.optim.lr == 3e-3 and config.model["hidden"] == 8
    assert "written to" in capsys.readouterr().out

    # Carry on to epoch 3 from the checkpoint, with the same split and the saved config.
    assert main(["--config-csv", str(out / "config.csv"), "--epochs", "3", "--resume", str(out / "checkpoint"),
                 "--split", str(out / "split.csv"), "--out", str(out), *SMALL]) == 0
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1, 2, 3]
    assert json.loads((out / "checkpoint" / "meta.json").read_text())["epoch"] == 3


def test_flags_override_a_config_row(tmp_path):
    row = TrialConfig("gru", {"hidden": 32, "version": "v2.1"}, optim={"lr": 1e-3, "epochs": 7}).to_flat()
    pd.DataFrame([row, row]).to_csv(tmp_path / "best_configs.csv", index=False)
    args = build_parser().parse_args(["--config-csv", str(tmp_path / "best_configs.csv"), "--row", "1",
                                      "--lr", "5e-4", "--model", "hidden=16"])
    trial = trial_from_args(args)
    assert trial.model == {"hidden": 16, "version": "v2.1"} and trial.optim.lr == 5e-4 and trial.optim.epochs == 7
    # Another family drops the row's model options.
    args = build_parser().parse_args(["--config-csv", str(tmp_path / "best_configs.csv"), "--family", "ecgnet"])
    assert trial_from_args(args).model == {}
    args = build_parser().parse_args(["--family", "ecgnet", "--version", "v3", "--model", "kernels=3,5,7"])
    assert trial_from_args(args).model == {"version": "v3", "kernels": "3,5,7"}


def test_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--family", "gru", "--schedule", "linear", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "schedule must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--lr", "0.1"])
    assert "give --family" in capsys.readouterr().err


def test_task_flag_trains_on_the_benchmark_classes(tmp_path, monkeypatch, ptbxl_dir):
    # PTB-XL's superdiagnostic task: its five classes, not the download's SCP codes; the official folds.
    monkeypatch.setenv("ECG_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["--family", "gru", "--model", "hidden=8", "--model", "fc_hidden=8", "--epochs", "1",
                 "--data", str(ptbxl_dir), "--task", "superdiagnostic", "--fs", "100", "--length", "1000",
                 "--leads", "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6", "--batch-size", "16", "--threads", "1",
                 "--out", str(out)]) == 0
    assert sorted(pd.read_csv(out / "thresholds.csv")["class"]) == ["CD", "HYP", "MI", "NORM", "STTC"]
    split = pd.read_csv(out / "split.csv")
    # The fixture's 60 records less the 10 with no superdiagnostic statement (tests/conftest.py's PTBXL_CODES: the
    # record of every six with rhythm and form statements only), left out as PTB-XL's benchmark does.
    assert len(split) == 50 and not (split["record_id"].astype(int) % 6 == 4).any()
    fold = (split["record_id"].astype(int) - 1) % 10 + 1  # the fixture's strat_fold
    assert (split["split"] == fold.map(lambda f: "val" if f == 9 else "test" if f == 10 else "train")).all()


def test_unknown_task_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--family", "gru", "--task", "nonsense"])
    assert exit_info.value.code == 2 and "--task" in capsys.readouterr().err
