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
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ecg.evaluation import AT_LEAST_ONE, ScoreIntervals, TestProbabilities, score_intervals  # noqa: E402
from ecg.flat_config import MODEL, OPTIM  # noqa: E402
from ecg.run_folder import (MODELS, BEST_CONFIGS, EPOCHS, PARETO, PER_CLASS, REPORT, TEST_PROBABILITIES,  # noqa: E402
                            TEST_RESULTS, TRIALS, RunFolder, RunFolderError, RunRecord)

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
    best_configs: pd.DataFrame = field(default_factory=pd.DataFrame)
    probabilities: pd.DataFrame = field(default_factory=pd.DataFrame)  # test_probabilities.csv: the intervals

    @classmethod
    def read(cls, folder: RunFolder) -> "Run":
        """RunFolderError (one line) for a run.json or CSV that is cut short or malformed."""
        read = folder.read_csv
        return cls(folder, folder.record, folder.status(), read(TRIALS), read(EPOCHS), read(TEST_RESULTS),
                   read(PER_CLASS), read(PARETO), read(BEST_CONFIGS), read(TEST_PROBABILITIES))

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

    def baseline(self) -> pd.Series | None:
        """What the chosen model is compared with: the best trial alone at threshold 0.5 (rank1, "0.5")."""
        if self.test.empty:
            return None
        rows = self.test[(self.test["model"] == "rank1") & (self.test["thresholds"].astype(str) == "0.5")]
        return rows.iloc[0] if len(rows) else None

    def thresholds_of(self, model: str, rule: str) -> np.ndarray | None:
        """The per-class thresholds of `model` under `rule`, in class order, from per_class.csv."""
        if self.per_class.empty:
            return None
        rows = self.per_class[(self.per_class["model"] == model) & (self.per_class["thresholds"].astype(str) == rule)]
        return rows["threshold"].to_numpy(dtype=np.float64) if len(rows) else None

    @cached_property
    def intervals(self) -> ScoreIntervals | str:
        """Bootstrap 95% intervals of the chosen model's test figures and of its difference from rank1 at 0.5, from
        the test probabilities the run kept; or why there are none (one sentence)."""
        chosen, base = self.chosen_model(), self.baseline()
        if chosen is None:
            return "no test evaluation in this run"
        if self.probabilities.empty:
            return f"this run folder has no {TEST_PROBABILITIES} (made by an older version): no intervals"
        try:
            kept = TestProbabilities.from_frame(self.probabilities)
        except ValueError as err:
            return f"{TEST_PROBABILITIES} is not readable ({err}): no intervals"
        model, rule = str(chosen["model"]), str(chosen["thresholds"])
        thresholds = self.thresholds_of(model, rule)
        if model not in kept.probabilities or thresholds is None or len(thresholds) != len(kept.class_names):
            return f"{TEST_PROBABILITIES} or {PER_CLASS} lack {model} under {rule}: no intervals"
        versus = None
        base_thresholds = self.thresholds_of("rank1", "0.5")
        if base is not None and (model, rule) != ("rank1", "0.5") and "rank1" in kept.probabilities \
                and base_thresholds is not None:
            versus = (kept.probabilities["rank1"], base_thresholds)
        # The resamples of test_results.csv's test_macro_auc_low/high (ecg.benchmark.auc_interval: seed 0).
        return score_intervals(kept.labels, kept.probabilities[model], thresholds,
                               at_least_one=rule.endswith(AT_LEAST_ONE), versus=versus)


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.{digits}f}",
                         classes="data", border=0)


def _param(value: Any) -> str:
    """A configuration value as a reader wants it: integers without decimals (a column with gaps reads them as
    floats), floats to 4 significant digits, nothing for a family that has no such option."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def _with_interval(value: float, low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    """`0.612 [0.550, 0.671]`; `n/a` for a figure test cannot give; the value alone without an interval."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    form = f"{{:{'+' if signed else ''}.{digits}f}}"
    if low is None or math.isnan(low) or math.isnan(high):
        return form.format(value)
    return f"{form.format(value)} [{form.format(low)}, {form.format(high)}]"


# How the report names the test figures (test_results.csv's test_<score> columns).
SCORE_NAMES = {"micro_f1": "micro-F1", "macro_f1": "macro-F1 (every class)",
               "macro_f1_present": "macro-F1 (classes present in test)", "micro_precision": "micro precision",
               "micro_recall": "micro recall", "exact_match": "exact match", "macro_auc": "macro AUC"}


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
    stopped, cut = (int(run.trials[column].astype(str).str.lower().eq("true").sum()) if column in run.trials else 0
                    for column in ("stopped_by_asha", "stopped_by_budget"))
    complete = int((status == "TERMINATED").sum()) - stopped - cut
    split = data.split or {}
    stopped_by = f" by {record.stopped_by}" if record.stopped_by and run.status == "interrupted" else ""
    rows = [("run", run.path.name), ("status", run.status + stopped_by), ("space", record.space or "?"),
            ("data", data.source or "?"),
            ("records", f"{_known(data.records)} ({_known(data.leads)} leads x {_known(data.samples)} samples at "
                        f"{_known(data.fs)} Hz, {_known(data.classes)} classes)"),
            ("split train / val / test", " / ".join(str(split.get(k, "?")) for k in ("train", "val", "test"))),
            ("trials", f"{complete} complete, {stopped} stopped by ASHA, "
                       + (f"{cut} stopped by the time budget ({_known(record.args.get('time_budget'))} min), "
                          if cut else "")
                       + f"{int((status == 'ERROR').sum())} errored"),
            ("search metric", run.metric), ("seed", _known(record.seed)),
            ("wall time", f"{_known(record.wall_time_s if record.wall_time_s is not None else record.search_time_s)} s"),
            ("search constants", ", ".join(f"{k}={v}" for k, v in (record.search_constants or {}).items()) or "-")]
    tie = validation_tie(run)
    if tie:
        rows.append(("ranking", tie))
    chosen = run.chosen_model()
    section = Section("The run")
    if chosen is not None:
        rows.append(("chosen model", f"{chosen['model']}: {_trial_names(run, chosen['trial_id'])}, thresholds "
                                     f"{chosen['thresholds']}"))
        rows.append(("chosen on validation", f"cross-fitted score {_fmt(chosen['cv_score'])}, val micro-F1 "
                                             f"{_fmt(chosen['val_micro_f1'])}, val macro-F1 {_fmt(chosen['val_macro_f1'])}"))
        section.html = f"<p class='headline'>{html.escape(headline(run, chosen))}</p>"
    if run.folder.has(MODELS):  # the evaluated models, as python -m ecg.predict applies them
        rows.append(("apply it to new records", f"python -m ecg.predict {shlex.quote(str(run.path))} --data "
                                                "DIR_OR_FILE; as a package: --export DIR [--onnx] (docs/predict.md)"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    section.html += f"<table class='kv'>{body}</table>"
    if chosen is not None:
        section.html += figures_table(run) + f"<p class='note'>{html.escape(figures_note(run))}</p>"
    return section


def _numbers(run: Run) -> dict[str, int]:
    """Ray trial id -> the trial's number (trials.csv's `trial_number`: the study's, its folder's)."""
    if not {"trial_id", "trial_number"} <= set(run.trials.columns):
        return {}
    return {str(t): int(n) for t, n in zip(run.trials["trial_id"], run.trials["trial_number"]) if pd.notna(n)}


def _trial_names(run: Run, trial_ids: str) -> str:
    """"trial 3 (5cdbd8cc)" for each trial of `trial_ids` ("a+b" for an ensemble), by trials.csv's number."""
    numbers = _numbers(run)
    names = [f"trial {numbers[t]} ({t})" if t in numbers else t for t in str(trial_ids).split("+")]
    return ", ".join(names)


def headline(run: Run, chosen: pd.Series) -> str:
    """One sentence: the chosen model's test micro- and macro-F1 and macro AUC, with their intervals."""
    intervals = run.intervals
    n_test = chosen.get("n_test_records", (run.record.data.split or {}).get("test", "?"))
    if isinstance(intervals, ScoreIntervals):
        by = intervals.scores.set_index("score")
        shown = {score: _with_interval(by.loc[score, "value"], by.loc[score, "low"], by.loc[score, "high"])
                 for score in by.index}
        how = f"95% bootstrap intervals over the {n_test} test records"
    else:
        shown = {score: _with_interval(float(chosen.get(f"test_{score}", float("nan"))), float("nan"), float("nan"))
                 for score in SCORE_NAMES}
        how = intervals
    present = chosen.get("test_classes_present")
    classes = run.record.data.classes
    over = (f"the {int(present)} of {classes} classes" if present is not None and not pd.isna(present) and classes
            else "the classes")
    return (f"Chosen model on test: micro-F1 {shown['micro_f1']}, macro-F1 {shown['macro_f1']} "
            f"({shown['macro_f1_present']} over {over} present in test), macro AUC {shown['macro_auc']} ({how}).")


def _verdict(low: float, high: float) -> str:
    """What a difference's interval says: only an interval that leaves 0 out shows a difference."""
    if math.isnan(low) or math.isnan(high):
        return ""
    if low > 0:
        return "higher (the interval is above 0)"
    if high < 0:
        return "lower (the interval is below 0)"
    return "no difference shown (the interval holds 0)"


def figures_table(run: Run) -> str:
    """Every test figure of the chosen model with its interval, rank1 at 0.5's, and the difference."""
    intervals = run.intervals
    if not isinstance(intervals, ScoreIntervals):
        return ""
    frame = intervals.scores
    table = pd.DataFrame({"test figure": [SCORE_NAMES.get(s, s) for s in frame["score"]],
                          "chosen model [95% interval]": [_with_interval(r.value, r.low, r.high)
                                                          for r in frame.itertuples()]})
    if "difference" in frame:
        table["rank1 at 0.5"] = [_with_interval(v, float("nan"), float("nan")) for v in frame["versus_value"]]
        table["difference [95% interval]"] = [_with_interval(r.difference, r.difference_low, r.difference_high,
                                                             signed=True) for r in frame.itertuples()]
        table["the difference is"] = [_verdict(r.difference_low, r.difference_high) for r in frame.itertuples()]
    return _table(table)


def figures_note(run: Run) -> str:
    intervals = run.intervals
    if not isinstance(intervals, ScoreIntervals):
        return f"Test figures without intervals: {intervals}."
    versus = ("; the difference from rank1 at threshold 0.5 (the best trial alone) is bootstrapped on the same "
              "resamples" if "difference" in intervals.scores else "; the chosen model is rank1 at 0.5 itself")
    return (f"Intervals: percentile bootstrap, {intervals.resamples} resamples of the test records (a resample "
            f"keeps every class that has positives and negatives in test){versus}. macro-F1 (every class) counts "
            "a class absent from test as 0; the classes present in test are the fairer average.")


WINNER_COLUMNS = ("rank", "trial_id", "best_epoch", "params")  # best_configs.csv's columns besides the config


def winners(run: Run) -> Section:
    """The top-k trials' hyperparameters, every sampled one, as their models were built (best_configs.csv)."""
    section = Section("The winners' hyperparameters")
    configs = run.best_configs
    if configs.empty or "trial_id" not in configs:
        section.note = "No best_configs.csv in this run (no trial finished)."
        return section
    score = f"best_{run.metric}"
    constants = set(run.record.search_constants or {})
    names = [c for c in configs.columns if c not in WINNER_COLUMNS and c != score and c not in constants]
    try:
        from search.study import drawn_where_built

        drawn = drawn_where_built(run.folder)
    except Exception as err:  # an unreadable study costs the note on drawn values, not the table
        log.warning("report: the study's drawn values are unreadable: %s", err)
        drawn = {}
    columns = {}
    for row in configs.to_dict("records"):
        trial_id = str(row["trial_id"])
        values = {"trial": _trial_names(run, trial_id), score: _fmt(row.get(score, float("nan"))),
                  "best epoch": _fmt(row.get("best_epoch")), "parameters": _fmt(row.get("params"))}
        for name in names:
            value = row.get(name)
            shown = _param(value)
            if name in drawn.get(trial_id, {}):
                shown += f" (drawn {drawn[trial_id][name]})"
            values[name] = shown
        columns[f"rank{int(row['rank'])}" if "rank" in row else trial_id] = values
    table = pd.DataFrame(columns)
    section.html = table.to_html(escape=True, classes="data", border=0)
    rates = run.record.data.rates or []
    section.note = ("Each winner's configuration as its model was built (best_configs.csv, which "
                    "`python -m ecg.train --config-csv` retrains); the search's constants are under The run. "
                    + (f"Options counted in input samples are drawn at the records' {run.record.data.fs} Hz and "
                       "scaled to the trial's data/fs: where a value was built from another drawn one, the drawn value "
                       "(optuna-dashboard's) follows in brackets." if len(rates) > 1 else ""))
    return section


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
    for ax, column, label in ((axes[0], "number", "trial number"), (axes[1], "time_s", "wall time (s)")):
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
    numbers = _numbers(run)
    trials = sorted(run.epochs.groupby("trial_id"),
                    key=lambda item: (numbers.get(str(item[0]), math.inf), str(item[0])))
    colours = _distinct_colours(len(trials))
    columns = [c for c in (metric, "val_loss", "train_loss") if c in run.epochs]
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        for (trial_id, frame), colour in zip(trials, colours):
            number = numbers.get(str(trial_id))
            label = f"trial {number}" if number is not None else str(trial_id)
            ax.plot(frame["epoch"], frame[column], color=colour, alpha=0.8, lw=1.2, marker=".",  # a 1-epoch trial too
                    label=label)
            if trial_id in stopped:
                ax.scatter(frame["epoch"].iloc[-1:], frame[column].iloc[-1:], marker="x", color=colour, s=40)
        for rung in asha_rungs(run.args):
            ax.axvline(rung, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(column)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].set_title("x: stopped by ASHA; dashed: ASHA rungs", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False,
               ncol=max(1, math.ceil(len(labels) / 30)))
    section.figures.append(_png(fig))
    section.note = ("One colour per trial, in every panel (the legend gives its number: trials.csv's trial_number, "
                    "optuna-dashboard's trial, TensorBoard's run train_trial_<id>_<number>_<family>).")
    return section


def _distinct_colours(n: int) -> list[Any]:
    """`n` colours that tell trials apart: matplotlib's qualitative tab10 / tab20, then evenly along turbo."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(x) for x in np.linspace(0.05, 0.95, n)]


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
    absent = rows["support"].to_numpy() == 0  # test cannot score these: n/a, not 0
    intervals = run.intervals
    bounds = None
    if isinstance(intervals, ScoreIntervals) and len(intervals.per_class) == len(rows):
        bounds = intervals.per_class
    order = rows.sort_values("support", kind="stable").index  # most frequent class on top
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.28 * len(rows)))
    y = np.arange(len(order))
    f1 = rows["f1"].where(~absent)
    error = None
    if bounds is not None:
        error = np.vstack([(f1 - bounds["f1_low"]).to_numpy(), (bounds["f1_high"] - f1).to_numpy()])[:, order]
    ax.barh(y, f1.loc[order].fillna(0.0), color="tab:blue", xerr=error, ecolor="0.35", capsize=2)
    for yi, i in zip(y, order):
        if absent[i]:
            ax.text(0.01, yi, "n/a: no positive record in test", va="center", fontsize=7, color="0.4")
            continue
        right = float(bounds.loc[i, "f1_high"]) if bounds is not None else float(f1.loc[i])
        ax.text(right + 0.01, yi, f"n={int(rows.loc[i, 'support'])}", va="center", fontsize=7)
    ax.set_yticks(y, [labels.label(i) for i in order], fontsize=8, **({"fontfamily": labels.font} if labels.font else {}))
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("test F1 with its 95% bootstrap interval (n = test support, positive records)" if bounds is not None
                  else "test F1 (n = test support, positive records)")
    ax.set_title(f"{chosen['model']}, thresholds {chosen['thresholds']}")
    section.figures.append(_png(fig))
    legend = pd.DataFrame({"class": rows["class"], "support": rows["support"]})
    if "val_support" in rows:
        legend["val_support"] = rows["val_support"]
    for name in ("f1", "precision", "recall"):
        if bounds is not None:
            legend[name] = [_with_interval(v, lo, hi) for v, lo, hi in
                            zip(rows[name].where(~absent), bounds[f"{name}_low"], bounds[f"{name}_high"])]
        else:
            legend[name] = [_with_interval(v, float("nan"), float("nan")) for v in rows[name].where(~absent)]
    legend["threshold"] = rows["threshold"]
    if labels.indexed:
        legend.insert(0, "label", [f"C{i}" for i in range(len(rows))])
    section.html = _table(legend, 3)
    section.note = (f"{int(absent.sum())} of {len(rows)} classes have no positive record in the test split: test "
                    "cannot score them (n/a); test_macro_f1 counts them as 0, test_macro_f1_present leaves them out. "
                    "A class with one or two test positives keeps them in every resample, so its interval is narrow "
                    "only because there is so little to resample: read its F1 with its n."
                    + ("" if bounds is not None else f" No intervals: {intervals}."))
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
    numbers = _numbers(run)
    ax.bar([f"{numbers[t]}\n{t}" if t in numbers else t for t, _ in members], [float(w) for _, w in members])
    ax.set_ylabel("weight in the greedy ensemble")
    ax.set_xlabel("trial (number, id)")
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
    """Does the chosen model beat the best trial alone at 0.5 on test? Said from the difference's interval: a
    difference inside it is no difference shown, whichever its sign."""
    chosen, base = run.chosen_model(), run.baseline()
    if base is None or chosen is None:
        return ""
    if (str(chosen["model"]), str(chosen["thresholds"])) == ("rank1", "0.5"):
        return "The chosen model is the best trial alone at threshold 0.5 (rank1)."
    intervals = run.intervals
    parts = []
    for score in ("micro_f1", "macro_f1"):
        b, c = float(base[f"test_{score}"]), float(chosen[f"test_{score}"])
        text = f"test {SCORE_NAMES[score]}: rank1 at 0.5 {b:.4f}, the chosen model {c:.4f}, difference {c - b:+.4f}"
        if isinstance(intervals, ScoreIntervals) and "difference" in intervals.scores:
            row = intervals.scores.set_index("score").loc[score]
            text += (f" [{row['difference_low']:+.4f}, {row['difference_high']:+.4f}]: "
                     f"{_verdict(row['difference_low'], row['difference_high'])}")
        else:
            text += f" (no interval: {intervals})"
        parts.append(text)
    greedy = run.chosen_rows()
    greedy = greedy[greedy["model"] == "ensemble_greedy"]
    g = (f" The greedy ensemble at its chosen rule: test micro-F1 {float(greedy.iloc[0]['test_micro_f1']):.4f}."
         if len(greedy) and chosen["model"] != "ensemble_greedy" else "")
    return (f"The chosen model ({chosen['model']}, {chosen['thresholds']}) against rank1 at 0.5 (95% bootstrap "
            f"intervals of the difference, paired on the same test records): " + "; ".join(parts) + "." + g)


def _log_axis(ax: plt.Axes) -> None:
    """A log x axis labelled only at its decades and, within one or two decades, at 2 and 5 times them, in short
    engineering form (30k, 1M, 0.2): the default labels every minor tick there, and long ones run into each other."""
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 else math.inf
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())


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
            _log_axis(ax)  # families differ by orders of magnitude; within one family a linear axis reads better
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
        _log_axis(ax)
    budget = run.args.get("max_params") if x == "params" else run.args.get("max_latency_ms") if x == "latency_ms_b1" else None
    if budget:
        ax.axvline(float(budget), color="0.3", linestyle="--", label="budget")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    section.figures.append(_png(fig))
    section.html = _table(run.pareto[[c for c in run.pareto.columns if not c.startswith((MODEL, OPTIM))]], 4)
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


SECTIONS: tuple[Callable[[Run], Section | None], ...] = (summary, winners, progress, learning_curves, importances,
                                                          families, per_class_f1, ensemble, thresholds, costs,
                                                          pareto_front, rates)

CSS = """body{font-family:sans-serif;margin:2em;max-width:1300px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;
border-bottom:1px solid #ccc}table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}td,th{padding:2px 8px;
border-bottom:1px solid #eee;text-align:left}table.kv th{background:#f6f6f6}img{max-width:100%}.note{color:#555;font-size:0.9em}
.headline{font-size:1.1em;font-weight:bold}"""


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
