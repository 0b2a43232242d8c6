"""Winners on test: thresholds tuned on validation only, the ensemble, and the next-best trial when a
checkpoint is missing or corrupt."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ecg.models import create_model
from ecg.synthetic import generate
from ecg.train import save_checkpoint
from search.exports import TrialRecord
from search.winners import CheckpointUnusable, evaluate_winners, evaluation_device, load_winner

MODEL = {"version": "v3", "width": 4, "width_1d": 16, "blocks_2d": 1, "blocks_1d": 4, "stem_kernel": 15}


@pytest.fixture(scope="module")
def splits():
    data = generate(60, seed=1, fs=250, length=2500)
    return data.subset(np.arange(0, 30)), data.subset(np.arange(30, 60))


def make_record(tmp_path, trial_id: str, f1: float, seed: int, checkpoint: bool = True) -> TrialRecord:
    torch.manual_seed(seed)
    model = create_model("ecgnet", n_leads=8, n_classes=26, length=2500, **MODEL)
    directory = None
    if checkpoint:
        directory = save_checkpoint({"model": model.state_dict(), "meta": {"epoch": 1}}, tmp_path / trial_id)
    config = {"family": "ecgnet", **{f"model/{k}": v for k, v in MODEL.items()}, "optim/lr": 1e-3}
    epochs = pd.DataFrame({"epoch": [1], "val_micro_f1": [f1]})
    return TrialRecord(trial_id, 1, "TERMINATED", config, epochs, checkpoint=directory)


def test_ranks_both_ensembles_and_three_threshold_rules(tmp_path, splits) -> None:
    val, test = splits
    ranked = [make_record(tmp_path, t, f1, s) for t, f1, s in (("a", 0.9, 1), ("b", 0.8, 2), ("c", 0.7, 3))]
    results = evaluate_winners(ranked, val, test, top_k=2, ensemble_candidates=3)
    assert [r.trial_id for r in results.winners] == ["a", "b"]
    frame = results.test_results
    assert list(frame["model"]) == [m for m in ("rank1", "rank2", "ensemble_topk", "ensemble_greedy") for _ in range(3)]
    assert list(frame["thresholds"]) == ["0.5", "global", "per_class"] * 4
    assert frame.groupby("model")["chosen"].sum().tolist() == [1, 1, 1, 1]  # exactly one rule per model
    assert frame.loc[6, "trial_id"] == "a+b" and frame.loc[6, "members"] == "a:0.5 b:0.5"
    at_half = frame[frame["thresholds"] == "0.5"].set_index("model")
    # Greedy selection over a, b, c on validation is never below its best single candidate there.
    singles = [evaluate_winners([r], val, test, top_k=1).test_results.loc[0, "val_micro_f1"] for r in ranked]
    assert at_half.loc["ensemble_greedy", "val_micro_f1"] >= max(singles) - 1e-12
    for column in ("test_micro_f1", "test_macro_f1", "test_macro_f1_present", "test_micro_precision",
                   "test_micro_recall", "test_exact_match", "test_macro_auc", "cv_score"):
        assert frame[column].dropna().between(0, 1).all() and frame[column].notna().any()
    assert (frame["n_test_records"] == 30).all() and (frame["test_positives"] == int(test.labels.sum())).all()
    assert at_half.loc["rank1", "params"] == sum(p.numel() for p in load_winner(ranked[0], val).parameters())
    assert at_half.loc["ensemble_topk", "params"] == 2 * at_half.loc["rank1", "params"]
    assert at_half.loc["rank1", "best_epoch"] == 1
    assert len(results.per_class) == 12 * 26
    assert set(results.per_class["class"]) == set(test.class_names)
    assert results.chosen["model"] in set(frame["model"])


def test_evaluation_device_follows_the_trials() -> None:
    assert evaluation_device(1.0, cuda_available=True) == "cuda"
    assert evaluation_device(0.5, cuda_available=True) == "cuda"
    assert evaluation_device(0.0, cuda_available=True) == "cpu"
    assert evaluation_device(None, cuda_available=True) == "cpu"
    assert evaluation_device(1.0, cuda_available=False) == "cpu"  # a GPU-less driver: CPU, with a warning


def test_missing_and_corrupt_checkpoints_fall_back_to_the_next_best(tmp_path, splits, capsys) -> None:
    val, test = splits
    missing = make_record(tmp_path, "missing", 0.95, 1, checkpoint=False)
    corrupt = make_record(tmp_path, "corrupt", 0.9, 2)
    (corrupt.checkpoint / "model.safetensors").write_bytes(b"garbage")
    good = [make_record(tmp_path, t, f1, s) for t, f1, s in (("g1", 0.8, 3), ("g2", 0.7, 4))]
    results = evaluate_winners([missing, corrupt, *good], val, test, top_k=2)
    assert [r.trial_id for r in results.winners] == ["g1", "g2"]
    assert [t for t, _ in results.skipped] == ["missing", "corrupt"]
    out = capsys.readouterr().out
    assert "trial missing has no checkpoint; evaluating the next-best trial instead" in out
    assert "checkpoint" in out and "of trial corrupt is unusable" in out
    with pytest.raises(CheckpointUnusable):
        load_winner(corrupt, val)


def test_the_chosen_model_is_never_nan_when_validation_is_too_small_to_cross_fit() -> None:
    from search.winners import WinnerResults

    rows = pd.DataFrame({
        "model": ["rank1", "rank1", "rank2", "ensemble_topk"], "thresholds": ["0.5", "global", "0.5", "0.5"],
        "chosen": [True, False, True, True], "trial_id": ["a", "a", "b", "a+b"],
        "cv_score": [float("nan")] * 4, "val_micro_f1": [0.4, 0.9, 0.6, 0.6]})
    # No cross-fitted score anywhere: the best in-sample validation score of the metric, the simpler of equals.
    assert WinnerResults(test_results=rows).chosen == {"model": "rank2", "thresholds": "0.5", "trial_id": "b"}
    rows["val_micro_f1"] = 0.5  # validation cannot tell them apart: the simplest, rank1
    assert WinnerResults(test_results=rows).chosen["model"] == "rank1"
    rows["cv_score"] = [float("nan"), 0.2, 0.3, 0.3]  # where cross-fitting scored, it decides; NaN ranks last
    assert WinnerResults(test_results=rows).chosen["model"] == "rank2"
