"""The driver's side of the data: load once, split once, write split.csv before any trial starts.

The steps themselves are `ecg.data.source` (shared with `python -m ecg.train`); this module turns the search
options into a `DataSpec` and packs what the trials receive.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecg.data import ALL_12_LEADS, HEFEI_LEADS, ECGDataset
from ecg.data.source import DataSpec, load as load_spec, split as split_dataset
from ecg.features import attach_features
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


def data_spec(options: SearchOptions) -> DataSpec:
    """The records a search reads: the synthetic set at the hardware's size, or `--data` at 500 Hz x 5,000
    (or --fs), with --task and --split filled from the data's convention (so run.json records them)."""
    leads = ALL_12_LEADS if options.leads == 12 else HEFEI_LEADS
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


def split(dataset: ECGDataset, *, seed: int, split_csv: Path, source: str, spec: DataSpec | None = None) -> SplitData:
    """The one already in `split_csv` when resuming, else the data's official split when `spec` asks for it
    (PTB-XL's default), else the stratified 7:1:2 split with `seed`; saved to `split_csv`. The hand-made
    features are attached to every part (`ecg.features.attach_features`)."""
    existing = split_csv if split_csv.exists() else None
    parts = split_dataset(dataset, seed=seed, existing=existing, spec=spec)
    # Every family space samples model/features, so the trials, the winners' test evaluation and a resumed
    # run all get them: computed once per dataset (cached), standardised on this run's training split.
    attach_features(parts, dataset)
    if existing is None:
        parts.save(split_csv)
    return SplitData(train=parts.train, val=parts.val, test=parts.test, fingerprint=parts.fingerprint, source=source)
