"""Tasks and conventions: which labels a benchmark scores, how its runs split, and what they select on.

A task turns a download's own labels into a benchmark's classes: PTB-XL's six (`ecg.data.ptbxl`) read its
database; CinC 2021's (`ecg.data.cinc2021`) map the Dx codes of WFDB headers. Each dataset also has a
convention the literature uses, which a run follows unless told otherwise and records in run.json:

| data | task (default) | split | selection metric |
|---|---|---|---|
| PTB-XL folder | all (default), diagnostic, subdiagnostic, superdiagnostic, form, rhythm | official | val_macro_auc |
| WFDB with `--task cinc2021` | cinc2021, cinc2021+unscored | stratified | val_challenge_score |
| Hefei, other WFDB, .npz, synthetic | none | stratified (7:1:2) | val_micro_f1 |

PTB-XL's official split is its strat_fold: 1-8 train, 9 validation, 10 test.
"""
from __future__ import annotations

from dataclasses import dataclass

from ecg.data import cinc2021, ptbxl
from ecg.data.errors import DataError
from ecg.values import quote

TASKS: dict[str, str] = {**{task: "ptbxl" for task in ptbxl.TASKS}, **{task: "wfdb" for task in cinc2021.TASKS}}
SPLITS = ("official", "stratified")


@dataclass(frozen=True)
class Convention:
    """How a dataset's results are made comparable: its task, split and selection metric."""

    task: str | None
    split: str
    metric: str

    def to_dict(self) -> dict[str, str | None]:
        return {"task": self.task, "split": self.split, "metric": self.metric}


def check_task(format_name: str, task: str | None, where: object) -> None:
    """A DataError (one line) when `task` is unknown or does not apply to data of `format_name`."""
    if task is None:
        return
    if task not in TASKS:
        raise DataError(f"--task {quote(task)} is unknown; choose one of {', '.join(TASKS)}")
    if TASKS[task] != format_name:
        wanted = "a PTB-XL folder (ptbxl_database.csv + scp_statements.csv)" if TASKS[task] == "ptbxl" \
            else "a WFDB folder with '# Dx:' SNOMED CT codes (CinC 2021)"
        raise DataError(f"{where}: --task {task} needs {wanted}; this is {format_name} data")


def convention(format_name: str | None, task: str | None) -> Convention:
    """The task, split and metric a run on this data follows by default (see the table above)."""
    if format_name == "ptbxl":
        return Convention(task or ptbxl.DEFAULT_TASK, "official", "val_macro_auc")
    if task in cinc2021.TASKS:
        return Convention(task, "stratified", "val_challenge_score")
    return Convention(task, "stratified", "val_micro_f1")


def resolve_split(format_name: str | None, split: str | None, has_official: bool, where: object) -> str:
    """The split a run uses: `split` when given (checked), else the data's convention."""
    if split is None:
        return "official" if has_official else "stratified"
    if split not in SPLITS:
        raise DataError(f"--split {quote(split)} is unknown; choose one of {', '.join(SPLITS)}")
    if split == "official" and not has_official:
        raise DataError(f"{where}: --split official: {format_name or 'synthetic'} data has no official split "
                        "(PTB-XL has one); use --split stratified")
    return split
