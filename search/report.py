"""report.html: what a run learnt, in one self-contained file (figures embedded as PNG data, no server, offline).

    python -m search.report results/ecgnet-20261201-101500     # rebuild it from the run folder's files alone

Everything comes from the files of the run folder (run.json, trials.csv, epochs.csv, test_results.csv,
per_class.csv, optuna.db), never from Ray's experiment or absolute paths, so a folder copied from a cluster
renders anywhere. Sections missing their inputs (an interrupted run has no test results) say so and go on.
Figures use matplotlib (Agg) and Optuna's own matplotlib plots and importance evaluators.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ecg.run_folder import (EPOCHS, PARETO, PER_CLASS, REPORT, TEST_RESULTS, TRIALS, RunFolder,  # noqa: E402
                            RunFolderError, RunRecord)

log = logging.getLogger(__name__)


# --- fonts: Chinese class names render with a CJK font, or as index labels with a legend, never as boxes

def _cjk_font() -> str | None:
    """The name of an installed font with CJK glyphs (Noto Sans CJK, WenQuanYi, ...), or None."""
    from matplotlib import font_manager

    keys = ("CJK", "WenQuanYi", "Source Han", "Droid Sans Fallback")
    for entry in font_manager.fontManager.ttflist:
        if any(key in entry.name for key in keys):
            return entry.name
    # matplotlib's font cache predates a font installed later (apt-get install fonts-noto-cjk): look on disk.
    for path in sorted(font_manager.findSystemFonts(), key=lambda p: ("Regular" not in p, p)):  # not a bold face
        if any(key.lower().replace(" ", "") in Path(path).name.lower() for key in ("CJK", "wqy", "SourceHan", "DroidSansFallback")):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
            return font_manager.FontProperties(fname=path).get_name()
    return None


def _renderable(texts: list[str], family: str | None) -> bool:
    """Whether every character of `texts` has a glyph in the font matplotlib picks for `family`."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    path = font_manager.findfont(font_manager.FontProperties(family=family or "DejaVu Sans"), fallback_to_default=True)
    try:
        charmap = FT2Font(path).get_charmap()
    except Exception:  # an unreadable font file: treat as missing glyphs, use index labels
        return False
    return all(ord(ch) in charmap for text in texts for ch in text if not ch.isspace())


@dataclass
class ClassLabels:
    """How class names appear in figures: themselves when the font has their glyphs, else C0, C1, ..."""

    names: list[str]
    font: str | None = None
    indexed: bool = False

    @classmethod
    def for_names(cls, names: list[str]) -> "ClassLabels":
        font = _cjk_font()
        if _renderable(names, None):
            return cls(names, None, False)
        if font is not None and _renderable(names, font):
            return cls(names, font, False)
        return cls(names, None, True)

    def label(self, i: int) -> str:
        return f"C{i}" if self.indexed else self.names[i]


# --- figures as data URIs

def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Section:
    title: str
    figures: list[str] = field(default_factory=list)  # data URIs
    html: str = ""
    note: str = ""


@dataclass
class Run:
    """The files of one run folder, read through its owner (`ecg.run_folder.RunFolder`)."""

    folder: RunFolder
    record: RunRecord
    status: str  # run.json's, or ENDED_SILENTLY for a `running` run that no live process holds
    trials: pd.DataFrame
    epochs: pd.DataFrame
    test: pd.DataFrame
    per_class: pd.DataFrame
    pareto: pd.DataFrame = field(default_factory=pd.DataFrame)  # --objectives only

    @classmethod
    def read(cls, folder: RunFolder) -> "Run":
        """RunFolderError (one line) for a run.json or CSV that is cut short or malformed."""
        read = folder.read_csv
        return cls(folder, folder.record, folder.status(), read(TRIALS), read(EPOCHS), read(TEST_RESULTS),
                   read(PER_CLASS), read(PARETO))

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def args(self) -> dict[str, Any]:
        return self.record.args

    @property
    def metric(self) -> str:
        return self.args.get("metric", "val_micro_f1")

    @property
    def maximise(self) -> bool:
        return not self.metric.endswith("loss")

    def study(self) -> Any:
        import optuna

        from search.study import load

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return load(self.folder)

    def chosen_rows(self) -> pd.DataFrame:
        """One row per model of test_results.csv: the threshold rule chosen on validation."""
        if self.test.empty or "chosen" not in self.test:
            return pd.DataFrame()
        return self.test[self.test["chosen"].astype(str).str.lower() == "true"]

    def chosen_model(self) -> pd.Series | None:
        chosen = self.record.chosen_model
        rows = self.chosen_rows()
        if rows.empty:
            return None
        if chosen:
            match = rows[(rows["model"] == chosen["model"]) & (rows["thresholds"].astype(str) == str(chosen["thresholds"]))]
            if len(match):
                return match.iloc[0]
        return rows.loc[rows["cv_score"].idxmax()]


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.{digits}f}",
                         classes="data", border=0)


# --- sections

def _known(value: Any) -> str:
    return "?" if value is None else str(value)


def validation_tie(run: Run) -> str:
    """A note when validation could not tell the ranked trials apart (every one scored the same best value)."""
    column = f"best_{run.metric}"
    if column not in run.trials or "status" not in run.trials:
        return ""
    scores = run.trials.loc[run.trials["status"] == "TERMINATED", column].dropna()
    if len(scores) < 2 or scores.nunique() > 1:
        return ""
    return (f"validation could not tell the {len(scores)} finished trials apart (each scored {run.metric} "
            f"{_fmt(float(scores.iloc[0]))} at best): they are ranked by trial number, the earlier first, and the "
            "test figures below say little")


def summary(run: Run) -> Section:
    record, data = run.record, run.record.data
    status = run.trials["status"] if "status" in run.trials else pd.Series(dtype=str)
    stopped = int(run.trials["stopped_by_asha"].astype(str).str.lower().eq("true").sum()) if "stopped_by_asha" in run.trials else 0
    complete = int((status == "TERMINATED").sum()) - stopped
    split = data.split or {}
    stopped_by = f" by {record.stopped_by}" if record.stopped_by and run.status == "interrupted" else ""
    rows = [("run", run.path.name), ("status", run.status + stopped_by), ("space", record.space or "?"),
            ("data", data.source or "?"),
            ("records", f"{_known(data.records)} ({_known(data.leads)} leads x {_known(data.samples)} samples at "
                        f"{_known(data.fs)} Hz, {_known(data.classes)} classes)"),
            ("split train / val / test", " / ".join(str(split.get(k, "?")) for k in ("train", "val", "test"))),
            ("trials", f"{complete} complete, {stopped} stopped by ASHA, {int((status == 'ERROR').sum())} errored"),
            ("search metric", run.metric), ("seed", _known(record.seed)),
            ("wall time", f"{_known(record.wall_time_s if record.wall_time_s is not None else record.search_time_s)} s"),
            ("search constants", ", ".join(f"{k}={v}" for k, v in (record.search_constants or {}).items()) or "-")]
    tie = validation_tie(run)
    if tie:
        rows.append(("ranking", tie))
    chosen = run.chosen_model()
    if chosen is not None:
        rows.append(("chosen model", f"{chosen['model']} ({chosen['trial_id']}), thresholds {chosen['thresholds']}"))
        rows.append(("chosen on validation", f"cross-fitted score {_fmt(chosen['cv_score'])}, val micro-F1 "
                                             f"{_fmt(chosen['val_micro_f1'])}, val macro-F1 {_fmt(chosen['val_macro_f1'])}"))
        rows.append(("its test scores", f"micro-F1 {_fmt(chosen['test_micro_f1'])}, macro-F1 {_fmt(chosen['test_macro_f1'])} "
                                        f"(over classes present in test: {_fmt(chosen.get('test_macro_f1_present', float('nan')))}), "
                                        f"macro AUC {_fmt(chosen['test_macro_auc'])}"))
    import shlex

    from ecg.run_folder import MODELS  # the evaluated models, as python -m ecg.predict applies them

    if run.folder.has(MODELS):
        rows.append(("apply it to new records", f"python -m ecg.predict {shlex.quote(str(run.path))} --data "
                                                "DIR_OR_FILE; as a package: --export DIR [--onnx] (docs/predict.md)"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return Section("The run", html=f"<table class='kv'>{body}</table>")


def _value_frame(run: Run) -> pd.DataFrame:
    """Per trial: Optuna number, finish time (s since the study's first start) and value (best so far of the
    trial), from the study; the trials.csv best values when there is no study."""
    study = run.study()
    rows = []
    if study is not None:
        import optuna

        # values[0]: the selection metric, also in a multi-objective study (where `value` is refused).
        trials = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                  and t.values]
        if trials:
            start = min(t.datetime_start for t in study.trials if t.datetime_start is not None)
            rows = [{"number": t.number, "time_s": (t.datetime_complete - start).total_seconds(), "value": t.values[0],
                     "state": t.state.name} for t in trials]
    if not rows and f"best_{run.metric}" in run.trials:
        rows = [{"number": int(r["trial_number"]), "time_s": float("nan"), "value": r[f"best_{run.metric}"],
                 "state": r["status"]} for _, r in run.trials.iterrows() if pd.notna(r[f"best_{run.metric}"])]
    return pd.DataFrame(rows)


def progress(run: Run) -> Section:
    section = Section("Progress of the search: best so far")
    values = _value_frame(run)
    if values.empty:
        section.note = "No trial reported a value."
        return section
    accumulate = np.maximum.accumulate if run.maximise else np.minimum.accumulate
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, column, label in ((axes[0], "number", "trial (Optuna number)"), (axes[1], "time_s", "wall time (s)")):
        ordered = values.sort_values(column)
        if ordered[column].isna().all():
            ax.text(0.5, 0.5, "no timing in this run's files", ha="center", transform=ax.transAxes)
            continue
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
            part = ordered[ordered["state"] == state]
            ax.scatter(part[column], part["value"], marker=marker, alpha=0.6,
                       label="stopped by ASHA (PRUNED)" if state == "PRUNED" else "trained to the end")
        ax.step(ordered[column], accumulate(ordered["value"].to_numpy()), where="post", color="k", label="best so far")
        ax.set_xlabel(label)
        ax.set_ylabel(f"best {run.metric} of the trial")
        ax.legend(fontsize=8)
    section.figures.append(_png(fig))
    section.note = ("Each point is one trial's best epoch (what ASHA and the sampler compare); crosses are trials "
                    "ASHA stopped, told to Optuna as PRUNED.")
    return section


def asha_rungs(args: dict[str, Any]) -> list[int]:
    """The epochs at which ASHA compares trials: grace_period x reduction_factor^k below max_epochs."""
    if args.get("scheduler", "asha") != "asha":
        return []
    grace, factor, max_epochs = args.get("grace_period"), args.get("reduction_factor"), args.get("max_epochs")
    if not grace or not factor or not max_epochs:
        return []
    rungs, rung = [], int(grace)
    while rung < int(max_epochs):
        rungs.append(rung)
        rung *= int(factor)
    return rungs


def learning_curves(run: Run) -> Section:
    section = Section("Learning curves")
    metric = run.metric
    if run.epochs.empty or metric not in run.epochs:
        section.note = "No epochs recorded."
        return section
    stopped = set()
    if "stopped_by_asha" in run.trials:
        stopped = set(run.trials.loc[run.trials["stopped_by_asha"].astype(str).str.lower() == "true", "trial_id"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, column in ((axes[0], metric), (axes[1], "train_loss" if "train_loss" in run.epochs else metric)):
        for trial_id, frame in run.epochs.groupby("trial_id"):
            line, = ax.plot(frame["epoch"], frame[column], alpha=0.6, lw=1, marker=".")  # a 1-epoch trial shows too
            if trial_id in stopped:
                ax.scatter(frame["epoch"].iloc[-1:], frame[column].iloc[-1:], marker="x", color=line.get_color(), s=40)
        for rung in asha_rungs(run.args):
            ax.axvline(rung, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(column)
    axes[0].set_title("x: stopped by ASHA; dashed: ASHA rungs", fontsize=9)
    section.figures.append(_png(fig))
    return section


MIN_IMPORTANCE_TRIALS = 10


def importances(run: Run) -> Section:
    section = Section("Parameter importances (Optuna)")
    study = run.study()
    if study is None:
        section.note = "No optuna.db in the run folder."
        return section
    import optuna

    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if complete < MIN_IMPORTANCE_TRIALS:
        section.note = (f"Not rated: the study has {complete} complete trials and an importance needs at least "
                        f"{MIN_IMPORTANCE_TRIALS} (fewer rate the parameters on noise).")
        return section
    # Imported here: fANOVA's forest pulls in scikit-learn, seconds a report without importances does not pay.
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    notes = []
    for name, evaluator in (("fANOVA", FanovaImportanceEvaluator(seed=0)), ("PED-ANOVA", PedAnovaImportanceEvaluator())):
        try:
            # Optuna switches matplotlib to its own style globally; the context puts the rest back afterwards.
            with warnings.catch_warnings(), plt.style.context("default"):
                warnings.simplefilter("ignore")  # Optuna flags its matplotlib backend as experimental
                # A multi-objective study: importances for the first objective, the selection metric.
                target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
                ax = plot_param_importances(study, evaluator=evaluator, target=target)
                ax.set_xlabel(f"{name} importance for {run.metric}")
                section.figures.append(_png(ax.figure))
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            plt.close("all")
            notes.append(f"{name}: not computable here ({err})")
    section.note = (f"Over the study's {complete} complete trials (PRUNED trials are left out by Optuna); "
                    "parameters sampled in only some trials are not rated. " + " ".join(notes))
    return section


def families(run: Run) -> Section | None:
    """--space all: the families side by side (None when the run searched one family)."""
    column = f"best_{run.metric}"
    if "family" not in run.trials or run.trials["family"].nunique() < 2 or column not in run.trials:
        return None
    section = Section("Families side by side")
    groups = [(family, frame[column].dropna().to_numpy()) for family, frame in run.trials.groupby("family")]
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 1.2), 4))
    ax.boxplot([values for _, values in groups], tick_labels=[f"{f}\n(n={len(v)})" for f, v in groups])
    for i, (_, values) in enumerate(groups, start=1):
        ax.scatter(np.full(len(values), i), values, alpha=0.5, s=12)
    ax.set_ylabel(column)
    section.figures.append(_png(fig))
    table = run.trials.groupby("family")[column].agg(["count", "max", "median"]).reset_index()
    section.html = _table(table)
    return section


def per_class_f1(run: Run) -> Section:
    section = Section("Per-class F1 of the chosen model against class support (test)")
    chosen = run.chosen_model()
    if chosen is None or run.per_class.empty:
        section.note = "No test evaluation in this run (interrupted, or no trial could be evaluated)."
        return section
    rows = run.per_class[(run.per_class["model"] == chosen["model"])
                         & (run.per_class["thresholds"].astype(str) == str(chosen["thresholds"]))].reset_index(drop=True)
    labels = ClassLabels.for_names([str(c) for c in rows["class"]])
    order = rows.sort_values("support", kind="stable").index  # most frequent class on top
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.28 * len(rows)))
    y = np.arange(len(order))
    ax.barh(y, rows.loc[order, "f1"], color="tab:blue")
    for yi, i in zip(y, order):
        ax.text(float(rows.loc[i, "f1"]) + 0.01, yi, f"n={int(rows.loc[i, 'support'])}", va="center", fontsize=7)
    ax.set_yticks(y, [labels.label(i) for i in order], fontsize=8, **({"fontfamily": labels.font} if labels.font else {}))
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("test F1 (n = test support, positive records)")
    ax.set_title(f"{chosen['model']}, thresholds {chosen['thresholds']}")
    section.figures.append(_png(fig))
    legend = rows[["class", "support", "f1", "precision", "recall", "threshold"]].copy()
    if "val_support" in rows:
        legend.insert(2, "val_support", rows["val_support"])
    if labels.indexed:
        legend.insert(0, "label", [f"C{i}" for i in range(len(rows))])
    section.html = _table(legend, 3)
    absent = int((rows["support"] == 0).sum())
    section.note = (f"{absent} of {len(rows)} classes have no positive record in the test split; test_macro_f1 "
                    "counts them (as 0 unless nothing is predicted for them: 0 too), test_macro_f1_present leaves them out.")
    return section


def ensemble(run: Run) -> Section:
    section = Section("Ensemble members and weights")
    rows = run.chosen_rows()
    greedy = rows[rows["model"] == "ensemble_greedy"] if not rows.empty else rows
    if greedy.empty:
        section.note = "No greedy ensemble in this run (fewer than two trials could be evaluated)."
        return section
    members = [m.split(":") for m in str(greedy.iloc[0]["members"]).split()]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar([t for t, _ in members], [float(w) for _, w in members])
    ax.set_ylabel("weight in the greedy ensemble")
    ax.set_xlabel("trial")
    section.figures.append(_png(fig))
    columns = [c for c in ("model", "members", "thresholds", "cv_score", f"{run.metric}" if run.metric in rows else None,
                           "val_micro_f1", "val_macro_f1", "test_micro_f1", "test_macro_f1", "params") if c]
    section.html = _table(rows[[c for c in dict.fromkeys(columns) if c in rows]])
    section.note = ("Greedy selection with replacement (Caruana et al. 2004) on validation predictions for the search "
                    "metric; its validation score is chosen on the same records, so it is optimistic; test shows "
                    "what it is worth.")
    return section


def thresholds(run: Run) -> Section:
    section = Section("What the thresholds do")
    if run.test.empty:
        section.note = "No test evaluation in this run."
        return section
    frame = run.test.copy()
    frame["thresholds"] = frame["thresholds"].astype(str)
    models = list(dict.fromkeys(frame["model"]))
    rules = list(dict.fromkeys(frame["thresholds"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=False)
    width = 0.8 / max(1, len(rules))
    for ax, column in zip(axes, ("cv_score", "test_micro_f1", "test_macro_f1")):
        for j, rule in enumerate(rules):
            part = frame[frame["thresholds"] == rule].set_index("model").reindex(models)
            bars = ax.bar(np.arange(len(models)) + j * width, part[column], width, label=rule)
            chosen = part["chosen"].astype(str).str.lower().eq("true").to_numpy()
            for bar, is_chosen in zip(bars, chosen):
                if is_chosen:
                    bar.set_edgecolor("k")
                    bar.set_linewidth(2)
        ax.set_xticks(np.arange(len(models)) + width * (len(rules) - 1) / 2, models, rotation=20, fontsize=8)
        ax.set_title({"cv_score": "validation, cross-fitted (what chose)", "test_micro_f1": "test micro-F1",
                      "test_macro_f1": "test macro-F1"}[column], fontsize=10)
        if len(frame[column].dropna()):
            low = float(frame[column].min())
            ax.set_ylim(max(0.0, low - 0.1), min(1.0, float(frame[column].max()) + 0.05))
    axes[0].legend(fontsize=8, title="rule")
    section.figures.append(_png(fig))
    columns = ["model", "thresholds", "chosen", "cv_score", "val_micro_f1", "test_micro_f1", "test_macro_f1",
               "test_macro_f1_present"]
    section.html = _table(frame[[c for c in columns if c in frame]])
    section.note = ("Bars with a black edge are the rule chosen for that model by cross-fitting on halves of "
                    f"validation ({(run.record.data.split or {}).get('val', '?')} records); test never "
                    "took part in any choice. " + verdict(run))
    return section


def verdict(run: Run) -> str:
    """One sentence: is the chosen model at least as good on test as the best single trial at 0.5?"""
    frame = run.test
    if frame.empty:
        return ""
    base = frame[(frame["model"] == "rank1") & (frame["thresholds"].astype(str) == "0.5")]
    chosen = run.chosen_model()
    if base.empty or chosen is None:
        return ""
    b, c = float(base.iloc[0]["test_micro_f1"]), float(chosen["test_micro_f1"])
    greedy = run.chosen_rows()
    greedy = greedy[greedy["model"] == "ensemble_greedy"]
    g = f"; the greedy ensemble at its chosen rule {float(greedy.iloc[0]['test_micro_f1']):.4f}" if len(greedy) else ""
    how = "at least as good as" if c >= b else "below"
    return (f"Test micro-F1: rank1 at 0.5 {b:.4f}; the chosen model ({chosen['model']}, {chosen['thresholds']}) "
            f"{c:.4f}, {how} it{g}.")


def costs(run: Run) -> Section:
    section = Section("Cost against accuracy")
    column = f"best_{run.metric}"
    needed = [c for c in ("params", "latency_ms_b1", "latency_ms_b64", "macs") if c in run.trials]
    if not needed or column not in run.trials or run.trials[needed].isna().all().all():
        section.note = "This run's trials.csv has no cost columns (made by an older version)."
        return section
    fig, axes = plt.subplots(1, len(needed), figsize=(4.5 * len(needed), 4))
    axes = np.atleast_1d(axes)
    for ax, cost in zip(axes, needed):
        for family, frame in run.trials.groupby("family") if "family" in run.trials else [("all", run.trials)]:
            ax.scatter(frame[cost], frame[column], label=family, alpha=0.7)
        values = run.trials[cost].dropna()
        if len(values) and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_xscale("log")  # families differ by orders of magnitude; within one family a linear axis reads better
        ax.set_xlabel({"params": "parameters", "macs": "MACs per record", "latency_ms_b1": "latency, batch 1 (ms/record)",
                       "latency_ms_b64": "latency, batch 64 (ms/record)"}[cost])
        ax.set_ylabel(column)
    axes[0].legend(fontsize=8)
    section.figures.append(_png(fig))
    columns = ["trial_id", "family", column, "params", "macs", "latency_ms_b1", "latency_ms_b64", "peak_mem_mb",
               "train_time_s", "best_epoch"]
    section.html = _table(run.trials[[c for c in columns if c in run.trials]].sort_values(column, ascending=not run.maximise), 3)
    section.note = "Latency is per record on the trial's own device, measured once per trial; peak memory on CPU is the worker process's."
    return section


def pareto_front(run: Run) -> Section | None:
    """--objectives: every trained trial on the first two objectives, the front joined up (pareto.csv)."""
    objectives = run.args.get("objectives")
    if not objectives:
        return None
    from search.pareto import objective_names

    names = objective_names(objectives, run.metric)
    section = Section(f"Pareto front ({objectives})")
    (y, _), (x, _) = names[0], names[1]
    trained = run.trials[run.trials["status"] == "TERMINATED"] if "status" in run.trials else run.trials
    if run.pareto.empty or x not in trained or y not in trained:
        section.note = "No trained trial: no front (every trial was over budget, or the run was interrupted early)."
        return section
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter(trained[x], trained[y], color="0.6", alpha=0.7, label="trials")
    front = run.pareto.sort_values(x)
    ax.step(front[x], front[y], where="post", color="C3")
    ax.scatter(front[x], front[y], color="C3", zorder=3, label="front")
    values = trained[x].dropna()
    if len(values) and values.min() > 0 and values.max() / values.min() > 10:
        ax.set_xscale("log")
    budget = run.args.get("max_params") if x == "params" else run.args.get("max_latency_ms") if x == "latency_ms_b1" else None
    if budget:
        ax.axvline(float(budget), color="0.3", linestyle="--", label="budget")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    section.figures.append(_png(fig))
    section.html = _table(run.pareto[[c for c in run.pareto.columns if not c.startswith(("model/", "optim/"))]], 4)
    rejected = int((run.trials["status"] == "OVER_BUDGET").sum()) if "status" in run.trials else 0
    section.note = (f"{len(run.pareto)} of {len(trained)} trained trials are on the front"
                    + (f"; {rejected} sampled configs were over budget and not trained" if rejected else "")
                    + ". The winners are the front's best by the first objective.")
    return section


def _with_epoch_time(trials: pd.DataFrame) -> pd.DataFrame:
    frame = trials.dropna(subset=["data/fs"]).copy()
    frame["data/fs"] = frame["data/fs"].astype(int)
    frame["epoch_time_s"] = frame["train_time_s"] / frame["epochs_run"].where(frame["epochs_run"] > 0)
    return frame


def rate_table(trials: pd.DataFrame, column: str, maximise: bool) -> pd.DataFrame:
    """Per input rate: trials, the best and median `column`, the median epoch time (a trial's training time
    over the epochs it ran) and the median batch-1 latency."""
    frame = _with_epoch_time(trials)
    best = "max" if maximise else "min"
    return frame.groupby("data/fs").agg(trials=(column, "size"), **{f"{best}_{column}": (column, best),
                                        f"median_{column}": (column, "median")},
                                        median_epoch_time_s=("epoch_time_s", "median"),
                                        **({"median_latency_ms_b1": ("latency_ms_b1", "median")}
                                           if "latency_ms_b1" in frame else {})).reset_index()


def rates(run: Run) -> Section | None:
    """The input rate (`data/fs`) against accuracy and cost: each trial's best validation metric against its
    mean epoch time, and `rate_table`. None for a run whose trials did not sample a rate (from before
    `data/fs`)."""
    column = f"best_{run.metric}"
    if "data/fs" not in run.trials or column not in run.trials or run.trials["data/fs"].isna().all():
        return None
    section = Section("Input rate against cost")
    frame = _with_epoch_time(run.trials)
    fig, ax = plt.subplots(figsize=(6, 4))
    for fs, group in frame.groupby("data/fs"):
        ax.scatter(group["epoch_time_s"], group[column], label=f"{fs} Hz", alpha=0.7)
    ax.set_xlabel("mean epoch time (s)")
    ax.set_ylabel(column)
    ax.legend(fontsize=8)
    section.figures.append(_png(fig))
    section.html = _table(rate_table(run.trials, column, run.maximise), 3)
    section.note = ("Each trial trained at its sampled data/fs (records resampled once per run); epoch time is its "
                    "training time over the epochs it ran, so trials that ASHA stopped early count by their epochs.")
    return section


SECTIONS: tuple[Callable[[Run], Section | None], ...] = (summary, progress, learning_curves, importances, families,
                                                          per_class_f1, ensemble, thresholds, costs, pareto_front, rates)

CSS = """body{font-family:sans-serif;margin:2em;max-width:1300px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;
border-bottom:1px solid #ccc}table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}td,th{padding:2px 8px;
border-bottom:1px solid #eee;text-align:left}table.kv th{background:#f6f6f6}img{max-width:100%}.note{color:#555;font-size:0.9em}"""


def build(folder: RunFolder) -> str:
    """The report's HTML for a run folder (RunFolderError for a run.json or CSV that is cut short)."""
    run = Run.read(folder)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(run.path.name)}</title>"
             f"<style>{CSS}</style></head><body><h1>Search {html.escape(run.path.name)}</h1>"]
    for make in SECTIONS:
        try:
            section = make(run)
        except Exception as err:  # one broken figure must not cost the researcher the rest of the report
            log.warning("report section %s failed: %s", make.__name__, err)
            plt.close("all")
            section = Section(make.__name__, note=f"could not be drawn: {type(err).__name__}: {err}")
        if section is None:
            continue
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.extend(f"<img src='{uri}' alt='{html.escape(section.title)}'>" for uri in section.figures)
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        parts.append(section.html)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(folder: RunFolder) -> Path:
    """Write the folder's report.html (atomically) and return its path; the folder must be locked by this
    process (RunLocked when another process writes it)."""
    with folder.locked():
        return folder.write_text(REPORT, build(folder))


def write_report_safely(folder: RunFolder) -> Path | None:
    """`write_report`, but a failure is a warning: the run's results are written already and stay valid."""
    try:
        path = write_report(folder)
    except Exception as err:
        log.warning("could not write %s: %s", REPORT, err)
        print(f"warning: could not write {folder.file(REPORT)}: {type(err).__name__}: {err}")
        return None
    print(f"report: {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.report", description="Rebuild a run folder's report.html.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        print(write_report(RunFolder.open(args.run_dir)))
    except RunFolderError as err:
        print(f"search.report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
