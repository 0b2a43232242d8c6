"""The winners, evaluated once on the test split: each of the top-k trials' best checkpoints at threshold
0.5 and at per-class thresholds tuned on validation, and their ensemble (mean probability). Thresholds are
never tuned on test. A missing or corrupt checkpoint is reported and the next-best trial takes its place."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ecg.data import ECGDataset
from ecg.metrics import evaluate, per_class, tune_thresholds
from ecg.models import create_model
from ecg.train import load_checkpoint, predict
from search.exports import TrialRecord

log = logging.getLogger(__name__)


class CheckpointUnusable(RuntimeError):
    """A winner's checkpoint cannot be loaded (missing, incomplete or corrupt)."""


@dataclass
class Evaluated:
    """One evaluated model: its validation and test probabilities."""

    name: str
    trial_id: str
    val_probs: np.ndarray
    test_probs: np.ndarray


@dataclass
class WinnerResults:
    winners: list[TrialRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, why)
    test_results: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)


def load_winner(record: TrialRecord, data: ECGDataset) -> torch.nn.Module:
    """The model of `record` with its best epoch's weights; CheckpointUnusable when that is impossible."""
    if record.checkpoint is None:
        raise CheckpointUnusable(f"trial {record.trial_id} has no checkpoint")
    try:
        state = load_checkpoint(record.checkpoint)
        model = create_model(record.config["family"], n_leads=data.n_leads, n_classes=data.n_classes,
                             length=data.n_samples, **_model_options(record.config))
        weights = state["best_model"] if state.get("best_model") is not None else state["model"]
        model.load_state_dict(weights)
    except Exception as err:  # any failure to read or apply the file means the same: use the next trial
        raise CheckpointUnusable(f"checkpoint {record.checkpoint} of trial {record.trial_id} is unusable: "
                                 f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    return model


def _model_options(flat: dict) -> dict:
    return {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith("model/")}


def evaluate_winners(ranked: list[TrialRecord], val: ECGDataset, test: ECGDataset, *, top_k: int,
                     device: str = "cpu") -> WinnerResults:
    """Evaluate the first `top_k` trials of `ranked` whose checkpoints load, and their ensemble."""
    results = WinnerResults()
    evaluated: list[Evaluated] = []
    for record in ranked:
        if len(evaluated) == top_k:
            break
        try:
            model = load_winner(record, val)
        except CheckpointUnusable as err:
            log.warning("%s; evaluating the next-best trial instead", err)
            print(f"warning: {err}; evaluating the next-best trial instead")
            results.skipped.append((record.trial_id, str(err)))
            continue
        model.to(device)
        evaluated.append(Evaluated(name=f"rank{len(evaluated) + 1}", trial_id=record.trial_id,
                                   val_probs=predict(model, val, device=device),
                                   test_probs=predict(model, test, device=device)))
        results.winners.append(record)
    if len(evaluated) > 1:
        evaluated.append(Evaluated(
            name="ensemble", trial_id="+".join(e.trial_id for e in evaluated),
            val_probs=np.mean([e.val_probs for e in evaluated], axis=0),
            test_probs=np.mean([e.test_probs for e in evaluated], axis=0)))
    rows, per_class_frames = [], []
    for model in evaluated:
        tuned = tune_thresholds(val.labels, model.val_probs)
        for threshold_name, thresholds in (("0.5", 0.5), ("val_tuned", tuned)):
            scores = evaluate(test.labels, model.test_probs, thresholds)
            rows.append({"model": model.name, "trial_id": model.trial_id, "thresholds": threshold_name,
                         **{f"test_{k}": v for k, v in scores.items()}})
            table = per_class(test.labels, model.test_probs, thresholds, test.class_names)
            table.insert(0, "thresholds", threshold_name)
            table.insert(0, "trial_id", model.trial_id)
            table.insert(0, "model", model.name)
            per_class_frames.append(table)
    results.test_results = pd.DataFrame(rows)
    results.per_class = pd.concat(per_class_frames, ignore_index=True) if per_class_frames else pd.DataFrame()
    return results


def format_table(results: pd.DataFrame) -> str:
    """The printed summary: one line per model and threshold choice."""
    if results.empty:
        return "no trial could be evaluated on test"
    columns = ["model", "trial_id", "thresholds", "test_micro_f1", "test_macro_f1", "test_exact_match",
               "test_macro_auc"]
    return results[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}")


