"""The trainable's running best: what ASHA's rungs and the sampler compare for each trial."""
from __future__ import annotations

import math

import pytest

from search.options import SearchOptions, best_so_far
from search.trainable import RunningBest


def test_running_best_keeps_the_maximum_of_a_score_across_a_dip() -> None:
    running = RunningBest("val_micro_f1", "max")
    # A model predicting no label at all for an epoch scores 0; the trial is still worth its best epoch.
    assert [running.update({"val_micro_f1": v}) for v in (0.4, 0.0, 0.35, 0.6)] == [0.4, 0.4, 0.4, 0.6]


def test_running_best_keeps_the_minimum_of_a_loss() -> None:
    running = RunningBest("val_loss", "min")
    assert [running.update({"val_loss": v}) for v in (0.5, 0.7, 0.3)] == [0.5, 0.5, 0.3]


def test_running_best_skips_undefined_epochs_and_starts_undefined() -> None:
    running = RunningBest("val_macro_auc", "max")
    assert math.isnan(running.update({"val_macro_auc": math.nan}))
    assert running.update({"val_macro_auc": 0.7}) == 0.7
    assert running.update({"val_macro_auc": math.nan}) == 0.7
    assert running.update({}) == 0.7


def test_running_best_resumes_from_a_checkpoints_history() -> None:
    history = [{"epoch": 1, "val_micro_f1": 0.5}, {"epoch": 2, "val_micro_f1": 0.2}]
    assert RunningBest("val_micro_f1", "max", history).update({"val_micro_f1": 0.3}) == pytest.approx(0.5)


def test_the_search_compares_trials_by_their_best_so_far() -> None:
    assert SearchOptions(space="ecgnet").trial_metric == "best_so_far_val_micro_f1" == best_so_far("val_micro_f1")
    assert SearchOptions(space="gru", metric="val_loss").trial_metric == "best_so_far_val_loss"
