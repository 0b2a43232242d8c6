"""The winners, evaluated once on the test split, with every choice made on validation.

From the best checkpoints of up to `ensemble_candidates` finished trials (best first), this evaluates
- `rank1..rankK`: the top-k trials alone;
- `ensemble_topk`: the mean probability of the top k;
- `ensemble_greedy`: Caruana's greedy selection with replacement over all candidates (`ecg.ensemble`), for
  the search metric on validation, so never below rank1 there;
each under three threshold rules (`ecg.thresholds`: 0.5, one global cut, per-class cuts), one of them
`chosen` per model by cross-fitting on validation. Each row carries the validation scores it was chosen on;
the test split is only ever scored. A missing or corrupt checkpoint is reported and the next-best trial
takes its place. Inference runs on the device the trials trained on, in batches, with their bf16 policy.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecg.benchmark import auc_interval, per_source_rows, task_scores
from ecg.data import ECGDataset
from ecg.ensemble import combine, greedy_selection
from ecg.metrics import evaluate, label_score, per_class, probability_score
from ecg.models import create_model
from ecg.thresholds import choose_thresholds
from ecg.train import load_checkpoint, predict
from search.data import config_fs
from search.exports import TrialRecord

# The val and test records at a trial's input rate (`search.data.SplitData.at_rate`): what has `.val`, `.test`.
AtRate = Callable[[int | None], Any]

log = logging.getLogger(__name__)

ENSEMBLE_CANDIDATES = 10  # the default N of greedy selection: the best N finished trials
EVAL_BATCH_SIZE = 256
SCORES = ("micro_f1", "macro_f1", "macro_f1_present", "micro_precision", "micro_recall", "exact_match", "macro_auc")


class CheckpointUnusable(RuntimeError):
    """A winner's checkpoint cannot be loaded (missing, incomplete or corrupt)."""


@dataclass
class Evaluated:
    """One evaluated model: its validation and test probabilities, members and weights, cost."""

    name: str
    trial_id: str
    val_probs: np.ndarray
    test_probs: np.ndarray
    members: dict[str, float] = field(default_factory=dict)  # trial id -> weight
    params: int | None = None
    best_epoch: int | None = None
    fs: str = ""  # the input rate(s) it was evaluated at: a trial's data/fs, an ensemble's members' "100+250"


@dataclass
class WinnerResults:
    winners: list[TrialRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, why)
    test_results: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_source: pd.DataFrame = field(default_factory=pd.DataFrame)  # CinC 2021 only: rows per record source
    device: str = "cpu"

    @property
    def chosen(self) -> dict[str, Any] | None:
        """The model a researcher should take: the best validation score under its chosen thresholds
        (cross-fitted); ties go to the simpler model (rank1 before the ensembles)."""
        frame = self.test_results
        if frame.empty:
            return None
        rows = frame[frame["chosen"]]
        best = rows.loc[rows["cv_score"].idxmax()]
        return {"model": best["model"], "thresholds": best["thresholds"], "trial_id": best["trial_id"]}


def evaluation_device(gpus_per_trial: float | None, *, cuda_available: bool | None = None) -> str:
    """Where the winners are evaluated: CUDA when the trials trained on GPUs and this machine has one."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if gpus_per_trial and not cuda_available:
        log.warning("the trials used GPUs but this machine has none: evaluating the winners on the CPU")
    return "cuda" if gpus_per_trial and cuda_available else "cpu"


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


def _bf16(record: TrialRecord) -> bool | None:
    """The trial's own bf16 setting (None: autocast on CUDA only, as in training)."""
    value = record.config.get("optim/bf16")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(value)


def _candidates(ranked: list[TrialRecord], val: ECGDataset, test: ECGDataset, results: WinnerResults, *,
                count: int, top_k: int, metric: str, mode: str, device: str,
                at_rate: AtRate | None = None) -> list[Evaluated]:
    evaluated: list[Evaluated] = []
    for record in ranked:
        if len(evaluated) == count:
            break
        fs = config_fs(record.config)
        # A trial is scored on its own input rate's records (the same records, the same labels, resampled).
        if at_rate is not None:
            split = at_rate(fs)
            val, test = split.val, split.test
        try:
            model = load_winner(record, val)
        except CheckpointUnusable as err:
            log.warning("%s; evaluating the next-best trial instead", err)
            print(f"warning: {err}; evaluating the next-best trial instead")
            results.skipped.append((record.trial_id, str(err)))
            continue
        bf16 = _bf16(record)
        best = record.best(metric, mode)
        evaluated.append(Evaluated(
            name=f"rank{len(evaluated) + 1}", trial_id=record.trial_id, members={record.trial_id: 1.0},
            val_probs=predict(model, val, device=device, batch_size=EVAL_BATCH_SIZE, bf16=bf16),
            test_probs=predict(model, test, device=device, batch_size=EVAL_BATCH_SIZE, bf16=bf16),
            params=sum(p.numel() for p in model.parameters()),
            best_epoch=int(best["epoch"]) if best is not None else None, fs=str(val.fs)))
        if len(evaluated) <= top_k:
            results.winners.append(record)
        del model
    return evaluated


def _ensemble(name: str, candidates: list[Evaluated], weights: np.ndarray) -> Evaluated:
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    members = [(c, float(w)) for c, w in zip(candidates, weights) if w > 0]
    return Evaluated(
        name=name, trial_id="+".join(c.trial_id for c, _ in members),
        members={c.trial_id: round(w, 4) for c, w in members},
        val_probs=combine([c.val_probs for c, _ in members], np.array([w for _, w in members])),
        test_probs=combine([c.test_probs for c, _ in members], np.array([w for _, w in members])),
        params=sum(c.params or 0 for c, _ in members),
        fs="+".join(str(r) for r in sorted({int(c.fs) for c, _ in members})))


def evaluate_winners(ranked: list[TrialRecord], val: ECGDataset, test: ECGDataset, *, top_k: int,
                     metric: str = "val_micro_f1", mode: str = "max",
                     ensemble_candidates: int = ENSEMBLE_CANDIDATES, device: str = "cpu",
                     seed: int = 0, at_rate: AtRate | None = None) -> WinnerResults:
    """Evaluate the top `top_k` trials of `ranked` whose checkpoints load, their mean, and the greedy
    ensemble over up to `ensemble_candidates` trials (see the module docstring). `val` and `test` are at the
    records' rate; `at_rate(fs)` gives them at a trial's `data/fs` (each trial is scored at its own rate)."""
    results = WinnerResults(device=device)
    candidates = _candidates(ranked, val, test, results, count=max(top_k, ensemble_candidates), top_k=top_k,
                             metric=metric, mode=mode, device=device, at_rate=at_rate)
    models = candidates[:top_k]
    if len(models) > 1:
        models.append(_ensemble("ensemble_topk", models, np.ones(len(models))))
    if len(candidates) > 1:
        greedy = greedy_selection(val.labels, [c.val_probs for c in candidates], probability_score(metric))
        models.append(_ensemble("ensemble_greedy", candidates, greedy.weights))
    score = label_score(metric)
    rows, per_class_frames, per_source_frames = [], [], []
    for model in models:
        choice = choose_thresholds(val.labels, model.val_probs, score, seed=seed)
        interval = auc_interval(test.labels, model.test_probs)  # PTB-XL's headline: macro-AUC with a 95% CI
        for rule, thresholds in choice.thresholds.items():
            val_scores = evaluate(val.labels, model.val_probs, thresholds)
            test_scores = evaluate(test.labels, model.test_probs, thresholds)
            rows.append({
                "model": model.name, "trial_id": model.trial_id,
                "members": " ".join(f"{t}:{w:g}" for t, w in model.members.items()),
                "thresholds": rule, "chosen": rule == choice.chosen,
                # What the rule was chosen on: its mean score on held-out halves of validation.
                "cv_score": choice.cross_fit[rule],
                **{f"val_{k}": val_scores[k] for k in SCORES},
                **{f"test_{k}": test_scores[k] for k in SCORES}, **interval,
                # what a benchmark defines for its own classes only (CinC 2021: val/test_challenge_score)
                **{f"val_{k}": v for k, v in task_scores(val.labels, model.val_probs, val.class_names,
                                                          thresholds).items()},
                **{f"test_{k}": v for k, v in task_scores(test.labels, model.test_probs, test.class_names,
                                                           thresholds).items()},
                "best_epoch": model.best_epoch, "params": model.params, "data_fs": model.fs,
                "n_val_records": len(val), "n_test_records": len(test),
                "test_positives": int(test.labels.sum()),
                "test_classes_present": int((test.labels.sum(axis=0) > 0).sum()),
                "threshold_values": " ".join(f"{t:.4g}" for t in thresholds),
            })
            table = per_class(test.labels, model.test_probs, thresholds, test.class_names)
            table.insert(0, "chosen", rule == choice.chosen)
            table.insert(0, "thresholds", rule)
            table.insert(0, "trial_id", model.trial_id)
            table.insert(0, "model", model.name)
            table["val_support"] = val.labels.sum(axis=0).astype(int)
            per_class_frames.append(table)
            sources = per_source_rows(test.labels, model.test_probs, test.class_names, test.record_ids, thresholds)
            if len(sources):
                sources.insert(0, "chosen", rule == choice.chosen)
                sources.insert(0, "thresholds", rule)
                sources.insert(0, "model", model.name)
                per_source_frames.append(sources)
    results.test_results = pd.DataFrame(rows)
    if len(results.test_results):
        for column in ("best_epoch", "params"):
            results.test_results[column] = results.test_results[column].astype("Int64")
    results.per_class = pd.concat(per_class_frames, ignore_index=True) if per_class_frames else pd.DataFrame()
    results.per_source = pd.concat(per_source_frames, ignore_index=True) if per_source_frames else pd.DataFrame()
    return results


def format_table(results: pd.DataFrame) -> str:
    """The printed summary: one line per model and threshold rule, the chosen rule marked."""
    if results.empty:
        return "no trial could be evaluated on test"
    columns = ["model", "thresholds", "chosen", "cv_score", "val_micro_f1", "test_micro_f1", "test_macro_f1",
               "test_macro_auc"]
    return results[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}")


def reevaluate(run_dir: Path, *, ensemble_candidates: int = ENSEMBLE_CANDIDATES) -> WinnerResults:
    """The winners of a finished run evaluated again from its saved checkpoints, data and split (what
    bench/bench_thresholds.py does to score new rules on existing runs)."""
    from search import data as run_data, runinfo, tuner
    from search.exports import read_trials
    from search.options import SearchOptions

    info = runinfo.read(run_dir)
    options = SearchOptions.from_dict(info["args"])
    dataset, source = run_data.load(options)
    split = run_data.with_space_rates(
        run_data.split(dataset, seed=options.seed, split_csv=run_dir / "split.csv", source=source), options)
    table = read_trials(tuner.experiment_path(options, run_dir))
    ranked = [r for r in table.ranked(options.metric, options.metric_mode) if r.status == "TERMINATED"]
    return evaluate_winners(ranked, split.val, split.test, top_k=options.top_k, metric=options.metric,
                            mode=options.metric_mode, ensemble_candidates=ensemble_candidates,
                            device=evaluation_device(options.gpus_per_trial), seed=options.seed,
                            at_rate=split.at_rate)
