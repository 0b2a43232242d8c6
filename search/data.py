"""The driver's side of the data: load once, split once, write split.csv before any trial starts.

The steps themselves are `ecg.data.source` (shared with `python -m ecg.train`); this module turns the search
options into a `DataSpec`, brings the splits to every input rate the space samples (`with_rates`: each rate
resampled once per run, and cached) and packs what the trials receive.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import Any

from ecg.data import ECGDataset
from ecg.data.dataset import lead_names
from ecg.data.rates import resample_dataset
from ecg.data.errors import DataError
from ecg.data.split import MINIMUM
from ecg.data.source import DataSpec, Splits, load as load_spec, split as split_dataset
from search.options import SearchOptions


@dataclass
class SplitData:
    """The three splits of one run, and where they came from."""

    train: ECGDataset
    val: ECGDataset
    test: ECGDataset
    fingerprint: str
    source: str
    others: dict[int, SplitData] = field(default_factory=dict)  # the same records at the other input rates
    parts: Splits | None = field(default=None, repr=False)  # the assignment split.csv records

    @property
    def fs(self) -> int:
        return self.train.fs

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("train", "val", "test")}

    def save(self, path: Path) -> None:
        """Write split.csv (`record_id,split`) at `path`."""
        assert self.parts is not None, "a split made by search.data.split"
        self.parts.save(path)

    def with_rates(self, rates: Iterable[int]) -> SplitData:
        """This split with its records also at every rate of `rates` (each split resampled once, cached)."""
        others = {fs: dataclasses.replace(self, train=resample_dataset(self.train, fs),
                                          val=resample_dataset(self.val, fs), test=resample_dataset(self.test, fs),
                                          others={}, parts=None)
                  for fs in sorted(set(rates)) if fs != self.fs}
        return dataclasses.replace(self, others=others)

    def at_rate(self, fs: int | None) -> SplitData:
        """The split at `fs` Hz (None: the records' own rate)."""
        return _pick(self, fs)

    @property
    def trial_data(self) -> TrialData:
        return TrialData(train=self.train, val=self.val,
                         others={fs: TrialData(train=s.train, val=s.val) for fs, s in self.others.items()})


@dataclass
class TrialData:
    """What a trial receives through Ray's object store: the training and validation records, never test, at
    the records' rate and at every other rate the space samples (`others`); a trial picks its own with
    `at_rate`. It is one object put into the store once: every rate's arrays are there once, read zero-copy."""

    train: ECGDataset
    val: ECGDataset
    others: dict[int, TrialData] = field(default_factory=dict)

    def at_rate(self, fs: int | None) -> TrialData:
        """The records at `fs` Hz (None: the records' own rate)."""
        return _pick(self, fs)

    @property
    def fs(self) -> int:
        return self.train.fs

    @property
    def length(self) -> int:
        return self.train.n_samples


def data_spec(options: SearchOptions) -> DataSpec:
    """The records a search reads: the synthetic set at the hardware's size, or `--data` at 500 Hz x 5,000
    (or --fs), with --task and --split filled from the data's convention (so run.json records them)."""
    leads = lead_names(str(options.leads))  # 8 or 12, as ecg.train reads them
    if options.data is None:
        return DataSpec(n_records=options.n_records, seed=options.seed, fs=options.fs, length=options.length,
                        leads=leads)
    return DataSpec(data=options.data, labels=options.labels, leads=leads, task=options.task, split=options.split,
                    skip_bad_records=options.skip_bad_records,
                    **({"fs": options.fs, "length": options.length} if options.fs else {})).resolved()


def load(options: SearchOptions) -> tuple[ECGDataset, str]:
    """The records the options name, and a one-line description of them."""
    spec = data_spec(options)
    return load_spec(spec), spec.describe()


def split(dataset: ECGDataset, *, seed: int, source: str, existing: Path | None = None,
          spec: DataSpec | None = None, features: bool = True) -> SplitData:
    """The split saved at `existing` (a resumed run's split.csv), else the data's official split when `spec` asks
    for it (PTB-XL's default), else the stratified 7:1:2 split with `seed`; `SplitData.save` writes split.csv.
    With `features` the hand-made features are attached to every part (`with_features`, the costly step: a new
    search does it while Ray starts)."""
    parts = split_dataset(dataset, seed=seed, existing=existing if existing is not None and existing.exists() else None,
                          spec=spec)
    made = SplitData(train=parts.train, val=parts.val, test=parts.test, fingerprint=parts.fingerprint, source=source,
                     parts=parts)
    return with_features(made, dataset) if features else made


def with_features(split: SplitData, dataset: ECGDataset) -> SplitData:
    """`split` with the hand-made features on every part. Every family space samples model/features, so the
    trials, the winners' test evaluation and a resumed run all get them: computed once per dataset (cached),
    standardised on this run's training split."""
    from ecg.features import attach_features  # the driver's step: trial workers import this module too

    assert split.parts is not None, "a split made by search.data.split"
    attach_features(split.parts, dataset)
    return split


def check_searchable(split: SplitData) -> None:
    """Refuse (DataError, one line with the numbers) a split too small to search and evaluate honestly: a part
    below `ecg.data.split.MINIMUM`, or a validation set without a single diagnosis (every trial would score
    the same)."""
    sizes = split.sizes()
    short = [f"{part} {sizes[part]} < {least}" for part, least in MINIMUM.items() if sizes[part] < least]
    if not short and not split.val.labels.any():
        short = ["validation has no labelled diagnosis"]
    if short:
        total = sum(sizes.values())
        raise DataError(f"{total} records split {sizes['train']} train / {sizes['val']} validation / "
                        f"{sizes['test']} test: too few to rank trials and test the winner ({', '.join(short)}); "
                        f"a search needs at least {MINIMUM['train']} train, {MINIMUM['val']} validation "
                        f"(with a diagnosis among them) and {MINIMUM['test']} test records: give more records")


def with_space_rates(split: SplitData, options: SearchOptions) -> SplitData:
    """`split` also at every input rate the space samples (`data/fs`): resampled once per run, before Ray."""
    return split.with_rates(options.space_context(split.fs, split.train.n_samples).rates)


def _pick(data: Any, fs: int | None) -> Any:
    if fs is None or fs == data.fs:
        return data
    if fs not in data.others:
        known = ", ".join(str(r) for r in sorted({data.fs, *data.others}))
        raise ValueError(f"no records at {fs} Hz in this run (it has {known} Hz)")
    return data.others[fs]
