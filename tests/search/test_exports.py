"""CSV exports: atomic writes, one row per trial with ASHA stops and retries, long-form epochs, best configs."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from ecg.train import TrialConfig
from ecg.run_folder import write_atomic, write_csv
from search.exports import TrialRecord, TrialTable, best_configs_frame, epochs_frame, flatten, trials_frame
from search.faults import FaultSpec
from search.trial_failures import trial_number


def record(trial_id: str, number: int, status: str, f1: list[float], failures: int = 0,
           error: str | None = None) -> TrialRecord:
    epochs = pd.DataFrame({"epoch": range(1, len(f1) + 1), "val_micro_f1": f1, "val_loss": [1.0 - v for v in f1],
                           "epoch_time_s": [2.0] * len(f1), "time_total_s": [2.0] * len(f1),
                           "training_iteration": range(1, len(f1) + 1)})
    config = {"family": "ecgnet", "model/version": "v3", "model/width": 8, "optim/lr": 1e-3, "optim/epochs": 4}
    return TrialRecord(trial_id, number, status, config, epochs, failures=failures, error=error)


TABLE = TrialTable([
    record("a", 1, "TERMINATED", [0.2, 0.5, 0.6, 0.55]),
    record("b", 2, "TERMINATED", [0.1, 0.15]),
    record("c", 3, "ERROR", [0.3], failures=3, error="non-finite loss: loss is nan"),
    record("d", 4, "TERMINATED", [0.4, 0.45, 0.5, 0.7], failures=1, error="InjectedFault: boom"),
])


def test_trials_frame_rows_and_asha_stops() -> None:
    frame = trials_frame(TABLE, metric="val_micro_f1", mode="max", max_epochs=4, scheduler="asha")
    assert list(frame["trial_id"]) == ["a", "b", "c", "d"]
    assert list(frame["epochs_run"]) == [4, 2, 1, 4]
    assert list(frame["stopped_by_asha"]) == [False, True, False, False]
    assert frame.loc[1, "stopped_at_epoch"] == 2 and pd.isna(frame.loc[0, "stopped_at_epoch"])
    assert list(frame["failures"]) == [0, 0, 3, 1]
    assert list(frame["retries"]) == [0, 0, 2, 1]  # the failure that ended trial c was not retried
    assert frame.loc[2, "error"] == "non-finite loss: loss is nan"
    assert frame.loc[0, "best_epoch"] == 3 and frame.loc[0, "best_val_micro_f1"] == pytest.approx(0.6)
    assert frame.loc[0, "last_val_micro_f1"] == pytest.approx(0.55)
    assert frame.loc[0, "train_time_s"] == pytest.approx(8.0)
    assert {"model/version", "model/width", "optim/lr", "family"} <= set(frame.columns)


def test_fifo_never_reports_asha_stops() -> None:
    frame = trials_frame(TABLE, metric="val_micro_f1", mode="max", max_epochs=4, scheduler="fifo")
    assert not frame["stopped_by_asha"].any()


def test_ranking_and_best_configs_round_trip_into_ecg_train(tmp_path) -> None:
    ranked = TABLE.ranked("val_micro_f1", "max")
    assert [r.trial_id for r in ranked] == ["d", "a", "c", "b"]
    assert [r.trial_id for r in TABLE.ranked("val_loss", "min")] == ["d", "a", "c", "b"]
    path = write_csv(best_configs_frame(ranked[:2], metric="val_micro_f1", mode="max"), tmp_path / "best.csv")
    back = TrialConfig.from_csv(path, row=0)
    assert back.family == "ecgnet" and back.model == {"version": "v3", "width": 8}
    assert back.optim.lr == pytest.approx(1e-3) and back.optim.epochs == 4


def test_best_configs_of_a_search_without_a_winner_is_a_header_that_reads(tmp_path) -> None:
    """Every trial over the budget (or none finished): best_configs.csv is its header alone, not an empty file
    that pandas cannot parse; ecg.train refuses its row 0 naming the file."""
    path = write_csv(best_configs_frame([], metric="val_micro_f1", mode="max"), tmp_path / "best.csv")
    assert path.read_text() == "rank,trial_id,best_val_micro_f1,best_epoch,params\n"
    assert pd.read_csv(path).empty
    with pytest.raises(ValueError, match=r"best\.csv: row 0 does not exist \(the file has 0 rows\)"):
        TrialConfig.from_csv(path, row=0)


def test_epochs_frame_is_long_form_without_ray_bookkeeping() -> None:
    frame = epochs_frame(TABLE)
    assert list(frame.columns) == ["trial_id", "epoch", "val_micro_f1", "val_loss", "epoch_time_s"]
    assert len(frame) == 4 + 2 + 1 + 4
    assert frame[frame.trial_id == "b"]["epoch"].tolist() == [1, 2]


def test_flatten_gives_the_slash_names_back() -> None:
    nested = {"family": "gru", "model": {"hidden": 32, "shared": True}, "optim": {"lr": 0.01}}
    assert flatten(nested) == {"family": "gru", "model/hidden": 32, "model/shared": True, "optim/lr": 0.01}


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path) -> None:
    target = tmp_path / "trials.csv"
    target.write_text("old,complete\n1,2\n")

    def disk_full(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, disk_full)
    assert target.read_text() == "old,complete\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.csv"]  # no temporary file left behind
    write_csv(pd.DataFrame({"x": [1]}), target)
    assert target.read_text() == "x\n1\n" and oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_fault_spec_and_trial_numbers() -> None:
    spec = FaultSpec.parse("raise@2;trials=1,3;times=1")
    assert (spec.kind, spec.epoch, spec.trials, spec.times) == ("raise", 2, frozenset({1, 3}), 1)
    assert spec.applies_to(3) and not spec.applies_to(2)
    assert FaultSpec.parse("nan@1").applies_to(99)
    with pytest.raises(ValueError, match="KIND@EPOCH"):
        FaultSpec.parse("explode@1")
    assert trial_number("train_trial_ba62ee55_3_family=ecgnet,width=8_2026-11-25_17-37-24", "ba62ee55") == 3
    assert trial_number("something else", "ba62ee55") == 0
    assert math.isnan(record("e", 5, "PENDING", []).best_value("val_micro_f1", "max"))


def test_progress_csv_keeps_trial_ids_that_look_like_numbers(tmp_path) -> None:
    from search.exports import _read_progress

    path = tmp_path / "progress.csv"
    pd.DataFrame({"epoch": [1, 2], "val_micro_f1": [0.1, 0.2], "trial_id": ["9884e585"] * 2}).to_csv(path, index=False)
    assert _read_progress(path)["trial_id"].tolist() == ["9884e585", "9884e585"]
