"""The records a run names and their split: one step shared by a search (`launch.py`) and `python -m ecg.train`.

    spec = DataSpec(data=None, n_records=1000, fs=250, length=2500)     # the built-in synthetic set
    splits = split(load(spec), seed=0)                                   # or split(..., existing="split.csv")
    splits.save(run_dir / "split.csv")

A run records its `DataSpec` in run.json (`spec.to_dict()`), so a winner retrained from its run folder reads
exactly the records its trial saw, in the same split.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecg import values
from ecg.data.dataset import FS, HEFEI_LEADS, N_SAMPLES, ECGDataset, check_signals_fit, lead_names
from ecg.data.tasks import TASKS
from ecg.data.errors import DataError
from ecg.values import quote


def _option(default: Any, help: str, **meta: Any) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class DataSpec:
    """Where a run's records come from. `data` None means the built-in synthetic set, made from `n_records`
    and `seed`; `fs` and `length` are the rate and samples per record every source is brought to. `task`
    picks a benchmark's classes (`ecg.data.tasks`: PTB-XL's six, cinc2021) and `split` is "official" (PTB-XL's
    strat_fold) or "stratified"; None means the data's convention (`convention()`)."""

    # The `help` metadata makes a field an option of python -m ecg.train (`ecg.cli.add_options`).
    data: Path | None = _option(None, "Hefei folder, WFDB folder or .npz (default: the synthetic set)")
    labels: Path | None = _option(None, "class list / label file for --data (see docs/data.md)")
    n_records: int = _option(1000, "size of the synthetic set")
    fs: int = _option(FS, "sampling rate in Hz the records are read at (the config's data/fs becomes this rate too)")
    length: int = _option(N_SAMPLES, "samples per record")
    seed: int = _option(0, "seed of a new split and of the synthetic set", flag="--split-seed")
    leads: tuple[str, ...] = _option(HEFEI_LEADS, "leads: 8 (I, II, V1-V6), 12, or names separated by commas "
                                                   "(I,II,V1)", type=lead_names)
    task: str | None = _option(None, "a benchmark's classes, as launch.py --task (PTB-XL: all, diagnostic, ..., "
                                     "rhythm; CinC 2021: cinc2021, cinc2021+unscored)", choices=TASKS)
    split: str | None = None  # "official" or "stratified"; a retrain gives a split.csv instead (ecg.train --split)
    # load the readable records; the others are in dataset.skipped, with why
    skip_bad_records: bool = _option(False, "load the readable records when some cannot be read; they are listed "
                                            "in skipped_records.csv in the output folder (default: refuse, one "
                                            "line counting them)")

    def __post_init__(self) -> None:
        for name in ("data", "labels"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value).expanduser())
        object.__setattr__(self, "leads", tuple(self.leads))
        repeated = sorted({lead for lead in self.leads if [x.lower() for x in self.leads].count(lead.lower()) > 1})
        if repeated:  # a model would see the same lead twice and another not at all
            raise DataError(f"leads {quote(','.join(self.leads))} name {', '.join(map(quote, repeated))} twice")
        try:
            object.__setattr__(self, "seed", values.seed(self.seed, "the seed of the split and synthetic set"))
        except ValueError as error:
            raise DataError(str(error)) from None

    @property
    def synthetic(self) -> bool:
        return self.data is None

    def describe(self) -> str:
        """One line naming the records, as run.json and the CLIs print it."""
        if self.synthetic:
            return f"synthetic(n={self.n_records}, seed={self.seed}, fs={self.fs}, length={self.length})"
        text = str(self.data) if self.labels is None else f"{self.data} (labels {self.labels})"
        return text if self.task is None else f"{text} (task {self.task})"

    def convention(self) -> dict[str, str | None]:
        """The task, split and selection metric a run on these records follows: the data's convention
        (`ecg.data.tasks`), with `task` and `split` as given when given. A DataError for what does not fit."""
        from ecg.data.loader import data_convention, resolve_split

        values = data_convention(self.data, self.task).to_dict()
        values["split"] = resolve_split(self.data, self.split)
        return values

    def resolved(self) -> "DataSpec":
        """A copy with `task` and `split` filled from the convention, as run.json records them."""
        values = self.convention()
        return dataclasses.replace(self, task=values["task"], split=values["split"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings, leads as a list."""
        values = dataclasses.asdict(self)
        values.update({k: (None if v is None else str(v)) for k, v in values.items() if k in ("data", "labels")})
        values["leads"] = list(self.leads)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DataSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def load(spec: DataSpec) -> ECGDataset:
    """The records `spec` names: the synthetic set (generated once, then cached) or a path through the readers."""
    if spec.synthetic:
        from ecg.synthetic import load_synthetic

        check_signals_fit(spec.n_records, len(spec.leads), spec.length,
                          f"--n-records {spec.n_records} at {spec.fs} Hz (a synthetic set)")

        return load_synthetic(n=spec.n_records, seed=spec.seed, leads=spec.leads, fs=spec.fs, length=spec.length)
    from ecg.data.loader import load_dataset

    return load_dataset(spec.data, labels=spec.labels, leads=spec.leads, fs=spec.fs, length=spec.length,
                        task=spec.task, skip_bad_records=spec.skip_bad_records)


@dataclass
class Splits:
    """A dataset's train/val/test parts, the assignment they come from, and the dataset's fingerprint."""

    train: ECGDataset
    val: ECGDataset
    test: ECGDataset
    assignment: np.ndarray
    record_ids: list[str]
    fingerprint: str
    # The training statistics the attached features were standardised with (`ecg.features.attach_features`).
    feature_scaling: Any = None

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "val", "test")}

    def save(self, path: Path) -> Path:
        """Write split.csv (`record_id,split`)."""
        from ecg.data.split import save_split

        return save_split(path, self.record_ids, self.assignment)


def split(dataset: ECGDataset, *, seed: int, existing: Path | None = None, spec: DataSpec | None = None) -> Splits:
    """The one saved at `existing` (every record listed once); else the data's official split when `spec`
    asks for it (or leaves `split` to PTB-XL's convention); else the stratified 7:1:2 split made with `seed`."""
    from ecg.data.cache import fingerprint
    from ecg.data.loader import official_split, resolve_split
    from ecg.data.split import load_split, make_split

    if existing is not None:
        assignment = load_split(existing, dataset.record_ids)
    elif spec is not None and resolve_split(spec.data, spec.split) == "official":
        assignment = official_split(spec.data, dataset.record_ids)
    else:
        assignment = make_split(dataset.labels, seed=seed, class_names=dataset.class_names)
    assignment = np.asarray(assignment)
    parts = {name: dataset.subset(np.flatnonzero(assignment == name)) for name in ("train", "val", "test")}
    return Splits(**parts, assignment=assignment, record_ids=list(dataset.record_ids),
                  fingerprint=fingerprint(dataset))
