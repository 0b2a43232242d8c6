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

Each trial is loaded and run, and each ensemble averaged, by `ecg.predict.model` (`Member`,
`mean_probabilities`): the code `python -m ecg.predict` applies the run's models with, from the manifest
`model_manifest` makes of what was evaluated here (models.json in the run folder).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecg.data import ECGDataset
from ecg.ensemble import greedy_selection
from ecg.evaluation import evaluate_on_test, probabilities_frame
from ecg.metrics import probability_score
from ecg.predict.manifest import Manifest, MemberSpec, ModelSpec
from ecg.predict.model import BATCH_SIZE, Member, checkpoint_weights, mean_probabilities
from ecg.run_folder import MODELS, SPLIT, TRIALS, RunFolder, RunRecord
from ecg.train import TrialConfig
from search.exports import TrialRecord, TrialTable

# The val and test records at a trial's input rate (`search.data.SplitData.at_rate`): what has `.val`, `.test`.
AtRate = Callable[[int | None], Any]

log = logging.getLogger(__name__)

ENSEMBLE_CANDIDATES = 10  # the default N of greedy selection: the best N finished trials
EVAL_BATCH_SIZE = BATCH_SIZE


class CheckpointUnusable(RuntimeError):
    """A winner's checkpoint cannot be loaded (missing, incomplete or corrupt)."""


@dataclass
class Evaluated:
    """One evaluated model: its validation and test probabilities, members and weights, cost."""

    name: str
    trial_id: str
    val_probs: np.ndarray
    test_probs: np.ndarray
    members: dict[str, float] = field(default_factory=dict)  # trial id -> weight, in the ensemble's order
    params: int | None = None
    best_epoch: int | None = None
    fs: str = ""  # the input rate(s) it was evaluated at: a trial's data/fs, an ensemble's members' "100+250"
    member: MemberSpec | None = None  # a single trial: what the manifest records of it


@dataclass
class WinnerResults:
    winners: list[TrialRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, why)
    test_results: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_source: pd.DataFrame = field(default_factory=pd.DataFrame)  # CinC 2021 only: rows per record source
    test_probabilities: pd.DataFrame = field(default_factory=pd.DataFrame)  # ecg.evaluation.probabilities_frame
    device: str = "cpu"
    metric: str = "val_micro_f1"  # the selection metric: its validation column breaks a tie of NaN cv_scores
    # What `model_manifest` records: every evaluated model with its thresholds, and the trials they are made of.
    models: list[ModelSpec] = field(default_factory=list)
    members: dict[str, MemberSpec] = field(default_factory=dict)

    @property
    def chosen(self) -> dict[str, Any] | None:
        """The model a researcher should take: the best cross-fitted validation score under its chosen
        thresholds; where validation is too small to cross-fit (cv_score NaN everywhere), the best in-sample
        validation score of the selection metric; ties go to the simpler model (rank1 before rank2, the single
        models before the ensembles)."""
        frame = self.test_results
        if frame.empty:
            return None
        rows = frame[frame["chosen"]]
        score = rows["cv_score"].astype(float)
        if score.isna().all() and self.metric in rows:
            score = rows[self.metric].astype(float)
        best = rows.loc[score.fillna(-np.inf).idxmax()]  # idxmax: the first of equals
        return {"model": best["model"], "thresholds": best["thresholds"], "trial_id": best["trial_id"]}


def evaluation_device(gpus_per_trial: float | None, *, cuda_available: bool | None = None) -> str:
    """Where the winners are evaluated: CUDA when the trials trained on GPUs and this machine has one."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if gpus_per_trial and not cuda_available:
        log.warning("the trials used GPUs but this machine has none: evaluating the winners on the CPU")
    return "cuda" if gpus_per_trial and cuda_available else "cpu"


def load_member(record: TrialRecord, data: ECGDataset) -> Member:
    """The trial of `record` with its best epoch's weights, for records like `data` (its rate and length);
    CheckpointUnusable when that is impossible."""
    if record.checkpoint is None:
        raise CheckpointUnusable(f"trial {record.trial_id} has no checkpoint")
    spec = MemberSpec(id=record.trial_id, config=dict(record.config), fs=int(data.fs), length=int(data.n_samples),
                      weights=str(record.checkpoint))
    try:
        return Member.build(spec, checkpoint_weights(str(record.checkpoint)), n_leads=data.n_leads,
                            n_classes=data.n_classes)
    except Exception as err:  # any failure to read or apply the file means the same: use the next trial
        raise CheckpointUnusable(f"checkpoint {record.checkpoint} of trial {record.trial_id} is unusable: "
                                 f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err


def load_winner(record: TrialRecord, data: ECGDataset) -> torch.nn.Module:
    """The network of `record` with its best epoch's weights (`load_member`)."""
    return load_member(record, data).module


def _candidates(ranked: list[TrialRecord], val: ECGDataset, test: ECGDataset, results: WinnerResults, *,
                count: int, top_k: int, metric: str, mode: str, device: str,
                at_rate: AtRate | None = None) -> list[Evaluated]:
    evaluated: list[Evaluated] = []
    for record in ranked:
        if len(evaluated) == count:
            break
        fs = TrialConfig.from_flat(record.config).fs
        # A trial is scored on its own input rate's records (the same records, the same labels, resampled).
        if at_rate is not None:
            split = at_rate(fs)
            val, test = split.val, split.test
        try:
            member = load_member(record, val)
        except CheckpointUnusable as err:
            log.warning("%s; evaluating the next-best trial instead", err)
            print(f"warning: {err}; evaluating the next-best trial instead")
            results.skipped.append((record.trial_id, str(err)))
            continue
        best = record.best(metric, mode)
        evaluated.append(Evaluated(
            name=f"rank{len(evaluated) + 1}", trial_id=record.trial_id, members={record.trial_id: 1.0},
            val_probs=member.predict(val, device=device), test_probs=member.predict(test, device=device),
            params=member.params, best_epoch=int(best["epoch"]) if best is not None else None, fs=str(val.fs),
            member=member.spec))
        if len(evaluated) <= top_k:
            results.winners.append(record)
        del member
    return evaluated


def _ensemble(name: str, candidates: list[Evaluated], weights: np.ndarray) -> Evaluated:
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    members = [(c, float(w)) for c, w in zip(candidates, weights) if w > 0]
    return Evaluated(
        name=name, trial_id="+".join(c.trial_id for c, _ in members),
        members={c.trial_id: w for c, w in members},
        val_probs=mean_probabilities([c.val_probs for c, _ in members], [w for _, w in members]),
        test_probs=mean_probabilities([c.test_probs for c, _ in members], [w for _, w in members]),
        params=sum(c.params or 0 for c, _ in members),
        fs="+".join(str(r) for r in sorted({int(c.fs) for c, _ in members})))


def evaluate_winners(ranked: list[TrialRecord], val: ECGDataset, test: ECGDataset, *, top_k: int,
                     metric: str = "val_micro_f1", mode: str = "max",
                     ensemble_candidates: int = ENSEMBLE_CANDIDATES, device: str = "cpu",
                     seed: int = 0, at_rate: AtRate | None = None) -> WinnerResults:
    """Evaluate the top `top_k` trials of `ranked` whose checkpoints load, their mean, and the greedy
    ensemble over up to `ensemble_candidates` trials (see the module docstring). `val` and `test` are at the
    records' rate; `at_rate(fs)` gives them at a trial's `data/fs` (each trial is scored at its own rate)."""
    results = WinnerResults(device=device, metric=metric)
    candidates = _candidates(ranked, val, test, results, count=max(top_k, ensemble_candidates), top_k=top_k,
                             metric=metric, mode=mode, device=device, at_rate=at_rate)
    results.members = {c.trial_id: c.member for c in candidates if c.member is not None}
    models = candidates[:top_k]
    if len(models) > 1:
        models.append(_ensemble("ensemble_topk", models, np.ones(len(models))))
    if len(candidates) > 1:
        greedy = greedy_selection(val.labels, [c.val_probs for c in candidates], probability_score(metric))
        models.append(_ensemble("ensemble_greedy", candidates, greedy.weights))
    rows, per_class_frames, per_source_frames = [], [], []
    for model in models:
        scored = evaluate_on_test(val, model.val_probs, test, model.test_probs, metric=metric, seed=seed)
        results.models.append(ModelSpec(name=model.name, members=list(model.members.items()), rule=scored.chosen,
                                        thresholds={rule: [float(t) for t in values]
                                                    for rule, values in scored.thresholds.items()}))
        identity = {"model": model.name, "trial_id": model.trial_id,
                    "members": " ".join(f"{t}:{round(w, 4):g}" for t, w in model.members.items())}
        rows += [{**identity, **row, "best_epoch": model.best_epoch, "params": model.params,
                  "data_fs": model.fs} for row in scored.rows]
        scored.per_class.insert(0, "trial_id", model.trial_id)
        scored.per_class.insert(0, "model", model.name)
        per_class_frames.append(scored.per_class)
        if len(scored.per_source):
            scored.per_source.insert(0, "model", model.name)
            per_source_frames.append(scored.per_source)
    results.test_results = pd.DataFrame(rows)
    if len(results.test_results):
        for column in ("best_epoch", "params"):
            results.test_results[column] = results.test_results[column].astype("Int64")
    results.per_class = pd.concat(per_class_frames, ignore_index=True) if per_class_frames else pd.DataFrame()
    results.per_source = pd.concat(per_source_frames, ignore_index=True) if per_source_frames else pd.DataFrame()
    if models:
        results.test_probabilities = probabilities_frame(test.record_ids, test.class_names, test.labels,
                                                         {model.name: model.test_probs for model in models})
    return results


def format_table(results: pd.DataFrame) -> str:
    """The printed summary: one line per model, under the threshold rule chosen for it (every rule of every model
    is in test_results.csv), then a line saying what `cv_score` is."""
    if results.empty:
        return "no trial could be evaluated on test"
    chosen = results[results["chosen"].astype(str).str.lower() == "true"]
    columns = [c for c in ("model", "thresholds", "cv_score", "val_micro_f1", "test_micro_f1", "test_macro_f1",
                           "test_macro_auc") if c in chosen]
    table = chosen[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}")
    return (f"{table}\ncv_score: what chose each model's rule, its score for the search metric on held-out halves "
            "of validation (cross-fitted); every rule's test figures are in test_results.csv")


def ranked_trials(table: TrialTable, trials: pd.DataFrame, *, metric: str, mode: str,
                  objectives: str | None = None) -> list[TrialRecord]:
    """The trials the winners are drawn from, best first: those that trained (finished, not over budget) by
    their best `metric`; with `objectives`, only the Pareto front's (`search.pareto.front` over the trials.csv
    frame `trials`), in its order: best by the first objective."""
    from search.pareto import front, objective_names

    ranked = [r for r in table.ranked(metric, mode) if r.status == "TERMINATED" and not r.over_budget]
    if not objectives:
        return ranked
    by_id = {r.trial_id: r for r in ranked}
    return [by_id[t] for t in front(trials, objective_names(objectives, metric))["trial_id"] if t in by_id]


def model_manifest(results: WinnerResults, split: Any, experiment: Path, record: RunRecord) -> Manifest | None:
    """What `python -m ecg.predict` needs to apply the evaluated models (`ecg.predict.manifest`, models.json):
    `split` is the run's `search.data.SplitData` (the records' leads, rate and length, the features' training
    statistics), `experiment` Ray's experiment folder, which the checkpoints are recorded relative to. None when
    nothing was evaluated, or when a checkpoint lies outside the experiment folder (then logged: a manifest never
    holds an absolute path)."""
    chosen = results.chosen
    if chosen is None or not results.models:
        return None
    used = dict.fromkeys(member for model in results.models for member, _ in model.members)  # in order
    experiment = Path(experiment).resolve()
    members = {}
    for trial_id in used:
        spec = results.members[trial_id]
        checkpoint = Path(spec.weights).resolve()
        if not checkpoint.is_relative_to(experiment):  # a path recorded before the folder was moved or copied
            checkpoint = experiment / checkpoint.parent.name / checkpoint.name
        if not checkpoint.is_dir():
            log.warning("checkpoint %s lies outside %s: no %s written", spec.weights, experiment, MODELS)
            return None
        relative = checkpoint.relative_to(experiment).as_posix()
        members[trial_id] = dataclasses.replace(spec, weights=relative)
    scaling = getattr(split.parts, "feature_scaling", None) if split.parts is not None else None
    return Manifest(classes=list(split.test.class_names), leads=list(split.test.lead_names), fs=int(split.fs),
                    length=int(split.test.n_samples), members=members,
                    models={model.name: model for model in results.models}, chosen=str(chosen["model"]),
                    metric=results.metric, feature_scaling=scaling.to_dict() if scaling is not None else None,
                    fingerprint=split.fingerprint, source=split.source,
                    code={"versions": record.versions, "git": record.git})


def _rebuild(folder: RunFolder) -> tuple[Any, Any, list[TrialRecord]]:
    """A finished run's options, split (at every rate it sampled) and ranked trials, from its folder."""
    from search import data as run_data
    from search.exports import read_trials
    from search.options import ResolvedOptions

    options = ResolvedOptions.from_dict(folder.record.args)
    dataset, source = run_data.load(options)
    split = run_data.with_space_rates(
        run_data.split(dataset, seed=options.seed, existing=folder.file(SPLIT), source=source), options)
    table = read_trials(folder.experiment_dir(options.storage_path))
    trials = folder.read_csv(TRIALS) if options.objectives else pd.DataFrame()
    ranked = ranked_trials(table, trials, metric=options.metric, mode=options.metric_mode, objectives=options.objectives)
    return options, split, ranked


def reevaluate(folder: RunFolder, *, ensemble_candidates: int | None = ENSEMBLE_CANDIDATES) -> WinnerResults:
    """The winners of a finished run evaluated again from its saved checkpoints, data and split (what
    bench/bench_thresholds.py does to score new rules on existing runs); `ensemble_candidates` None: the run's."""
    return _reevaluate(*_rebuild(folder), ensemble_candidates=ensemble_candidates)


def _reevaluate(options: Any, split: Any, ranked: list[TrialRecord], *,
                ensemble_candidates: int | None) -> WinnerResults:
    return evaluate_winners(ranked, split.val, split.test, top_k=options.top_k, metric=options.metric,
                            mode=options.metric_mode, ensemble_candidates=ensemble_candidates or
                            options.ensemble_candidates, device=evaluation_device(options.gpus_per_trial),
                            seed=options.seed, at_rate=split.at_rate)


def write_models(folder: RunFolder) -> Path:
    """models.json for a finished run that lacks it (made before prediction existed): its winners evaluated again
    from their checkpoints, as the search evaluated them. RuntimeError, one line, when nothing can be evaluated."""
    options, split, ranked = _rebuild(folder)
    results = _reevaluate(options, split, ranked, ensemble_candidates=None)
    manifest = model_manifest(results, split, folder.experiment_dir(options.storage_path), folder.record)
    if manifest is None:
        raise RuntimeError(f"{folder.path}: no trial of this run could be evaluated; no {MODELS} written")
    with folder.locked():
        return folder.write_json(MODELS, manifest.to_dict())


def main(argv: list[str] | None = None) -> int:
    """`python -m search.winners RUN_DIR`: write RUN_DIR/models.json for a run made before it was recorded."""
    import argparse

    from ecg.run_folder import RunFolderError

    parser = argparse.ArgumentParser(prog="python -m search.winners",
                                     description="Evaluate a finished run's winners again and write its models.json "
                                                 "(what python -m ecg.predict applies).")
    parser.add_argument("run_dir", type=Path, help="a finished run folder (results/<run>)")
    args = parser.parse_args(argv)
    try:
        folder = RunFolder.open(args.run_dir)
        if folder.record.status != "complete":
            raise RunFolderError(f"{folder.path} is {folder.status()}, not complete: resume it first "
                                 f"(python launch.py --resume {folder.path})")
        path = write_models(folder)
    except (RunFolderError, RuntimeError, ValueError, OSError) as err:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(err).split())}\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
