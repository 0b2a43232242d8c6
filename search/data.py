"""The driver's side of the data: load once, split once, write split.csv before any trial starts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg.data import ECGDataset
from search.options import SearchOptions


@dataclass
class SplitData:
    """The three splits of one run, and where they came from."""

    train: ECGDataset
    val: ECGDataset
    test: ECGDataset
    fingerprint: str
    source: str

    @property
    def trial_data(self) -> "TrialData":
        return TrialData(train=self.train, val=self.val)


@dataclass
class TrialData:
    """What a trial receives through Ray's object store: the training and validation records, never test."""

    train: ECGDataset
    val: ECGDataset

    @property
    def n_leads(self) -> int:
        return self.train.n_leads

    @property
    def n_classes(self) -> int:
        return self.train.n_classes

    @property
    def length(self) -> int:
        return self.train.n_samples


def load(options: SearchOptions) -> tuple[ECGDataset, str]:
    """The records the options name (a path, or the built-in synthetic set), and a description of them."""
    if options.data is None:
        from ecg.synthetic import load_synthetic

        dataset = load_synthetic(n=options.n_records, seed=options.seed, fs=options.fs, length=options.length)
        return dataset, f"synthetic(n={options.n_records}, seed={options.seed}, fs={options.fs}, length={options.length})"
    from ecg.data import load_dataset

    return load_dataset(options.data, labels=options.labels), str(options.data)


def split(dataset: ECGDataset, *, seed: int, split_csv: Path, source: str) -> SplitData:
    """Stratified 7:1:2 split with `seed` (or the one already in `split_csv` when resuming), saved to `split_csv`."""
    from ecg.data import fingerprint
    from ecg.data.split import load_split, make_split, save_split

    if split_csv.exists():
        assignment = load_split(split_csv, dataset.record_ids)
    else:
        assignment = make_split(dataset.labels, seed=seed)
        save_split(split_csv, dataset.record_ids, assignment)
    assignment = np.asarray(assignment)
    parts = {name: dataset.subset(np.flatnonzero(assignment == name)) for name in ("train", "val", "test")}
    return SplitData(**parts, fingerprint=fingerprint(dataset), source=source)
