"""The one dataset type every reader returns, and the tensors a model sees.

Signals are kept as int16 on the Hefei scale (one unit = 4.88 uV, so 1 mV = 204.9 units): a 20,000 x 8 x 5,000
set is 1.6 GB instead of 3.2 GB, loads from cache in about a second, and every source (Hefei text, WFDB in mV,
synthetic, .npz) ends up on the same scale. Conversion to float millivolts happens per batch, on the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ecg.data.errors import DataError

HEFEI_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
ALL_12_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def lead_names(text: str) -> tuple[str, ...]:
    """Leads as a command line gives them: 8 (the Hefei leads I, II, V1-V6), 12 (all twelve), or names separated
    by commas ("I,II,V1")."""
    named = {"8": HEFEI_LEADS, "12": ALL_12_LEADS}.get(str(text).strip())
    return named if named is not None else tuple(lead.strip() for lead in str(text).split(",") if lead.strip())
UV_PER_UNIT = 4.88
UNITS_PER_MV = 1000.0 / UV_PER_UNIT
FS = 500
N_SAMPLES = 5000

# Age and sex enter a model as four numbers: scaled age, age missing, sex (1 male, 0 female), sex missing.
AGE_SEX_DIM = 4
AGE_SCALE = 100.0


@dataclass
class ECGDataset:
    """Records of one source: `signals[N, leads, samples]` plus demographics, multi-hot labels and names.

    `age` is float32 in years and `sex` float32 (1 male, 0 female); NaN marks a missing value in both.
    `signals` may be None for a labels-only view (what `ecg.inspect` reads without touching signal files).
    `skipped` maps the records left out by `skip_bad_records=True` to why each could not be read.
    `features` holds the hand-made features as a model sees them (`ecg.features.attach_features`: standardised
    on the training split, `[N, ecg.features.layout.feature_width(leads)]`), or None when none are attached.
    """

    signals: np.ndarray | None
    age: np.ndarray
    sex: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    record_ids: list[str]
    lead_names: list[str] = field(default_factory=lambda: list(HEFEI_LEADS))
    fs: int = FS
    units_per_mv: float = UNITS_PER_MV
    skipped: dict[str, str] = field(default_factory=dict)
    features: np.ndarray | None = None
    # The content hash, when the cache already computed it (`ecg.data.cache.fingerprint` returns it instead of
    # hashing the signals again). A subset or a relabelled copy is a new object and never carries it.
    known_fingerprint: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.record_ids)
        self.age = np.asarray(self.age, dtype=np.float32)
        self.sex = np.asarray(self.sex, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.uint8)
        for name, arr in (("age", self.age), ("sex", self.sex), ("labels", self.labels)):
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} rows but there are {n} record ids")
        if self.labels.ndim != 2 or self.labels.shape[1] != len(self.class_names):
            raise ValueError(f"labels shape {self.labels.shape} does not match {len(self.class_names)} class names")
        if self.signals is not None:
            if self.signals.ndim != 3 or len(self.signals) != n:
                raise ValueError(f"signals shape {self.signals.shape} is not [{n}, leads, samples]")
            if self.signals.shape[1] != len(self.lead_names):
                raise ValueError(f"signals have {self.signals.shape[1]} leads but {len(self.lead_names)} lead names")
        if self.features is not None and (self.features.ndim != 2 or len(self.features) != n):
            raise ValueError(f"features shape {self.features.shape} is not [{n}, columns]")

    def __len__(self) -> int:
        return len(self.record_ids)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_leads(self) -> int:
        return len(self.lead_names)

    @property
    def n_samples(self) -> int:
        if self.signals is None:
            raise ValueError("this dataset holds labels only; it has no signals")
        return int(self.signals.shape[2])

    def subset(self, index: np.ndarray) -> "ECGDataset":
        """The records at `index` (integer positions or a boolean mask), sharing nothing mutable."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return ECGDataset(
            signals=None if self.signals is None else self.signals[index],
            age=self.age[index],
            sex=self.sex[index],
            labels=self.labels[index],
            class_names=list(self.class_names),
            record_ids=[self.record_ids[i] for i in index],
            lead_names=list(self.lead_names),
            fs=self.fs,
            units_per_mv=self.units_per_mv,
            skipped=dict(self.skipped),
            features=None if self.features is None else self.features[index],
        )

    def age_sex_features(self) -> np.ndarray:
        """`[N, AGE_SEX_DIM]` float32: age/100, age-missing, sex, sex-missing (missing values become 0)."""
        return age_sex_features(self.age, self.sex)

    def extra_inputs(self) -> np.ndarray:
        """Every per-record model input besides the signals: the age/sex features, then the attached features
        (`ecg.features.layout` names the columns; a model's options pick the ones it joins)."""
        age_sex = self.age_sex_features()
        if self.features is None:
            return age_sex
        return np.concatenate([age_sex, np.asarray(self.features, dtype=np.float32)], axis=1)


def check_signals_fit(n_records: int, n_leads: int, length: int, what: str) -> None:
    """Refuse (DataError, naming `what`) signals whose int16 array alone would take more than half this machine's
    memory: the splits, the features and each trial's copy come on top, so such a load would fail after minutes
    or hours instead of at once."""
    need = n_records * n_leads * length * np.dtype(np.int16).itemsize
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > memory / 2:
        raise DataError(f"{what}: the signals alone would take {need / 2**30:,.1f} GiB ({n_records} records x "
                        f"{n_leads} leads x {length} samples as int16), more than half this machine's "
                        f"{memory / 2**30:.1f} GiB")


def age_sex_features(age: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """Model inputs from age (years) and sex (1 male, 0 female), NaN meaning missing, with explicit indicators."""
    age = np.asarray(age, dtype=np.float32)
    sex = np.asarray(sex, dtype=np.float32)
    age_missing = np.isnan(age)
    sex_missing = np.isnan(sex)
    return np.stack(
        [
            np.where(age_missing, 0.0, age / AGE_SCALE),
            age_missing.astype(np.float32),
            np.where(sex_missing, 0.0, sex),
            sex_missing.astype(np.float32),
        ],
        axis=1,
    ).astype(np.float32)
