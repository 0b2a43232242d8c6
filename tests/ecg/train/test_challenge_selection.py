"""fit reports val_challenge_score on CinC 2021 classes and can keep the epoch that maximises it."""
from __future__ import annotations

import numpy as np
import pytest

from ecg.challenge import challenge_score
from ecg.data.cinc2021 import scoring
from ecg.data.dataset import ECGDataset
from ecg.train import TrainConfig, fit, predict

from .conftest import TinyNet, make_dataset


def _as_cinc(data: ECGDataset) -> ECGDataset:
    """The three toy classes become AF, NSR and STach among the 26 scored classes (the rest never occur)."""
    names = list(scoring().class_names)
    labels = np.zeros((len(data), len(names)), dtype=np.uint8)
    for toy, name in enumerate(("AF", "NSR", "STach")):
        labels[:, names.index(name)] = data.labels[:, toy]
    return ECGDataset(signals=data.signals, age=data.age, sex=data.sex, labels=labels, class_names=names,
                      record_ids=data.record_ids, lead_names=data.lead_names)


def test_challenge_score_selects_the_epoch():
    train, val = _as_cinc(make_dataset(256, seed=1)), _as_cinc(make_dataset(96, seed=2))
    model = TinyNet(n_classes=26)
    result = fit(model, train, val, TrainConfig(epochs=3, batch_size=32, lr=3e-3, metric="val_challenge_score",
                                                threads=1, augment=False))
    values = [epoch["val_challenge_score"] for epoch in result.history]
    assert result.best_epoch == int(np.argmax(values)) + 1
    # the reported value is the Challenge score of the kept weights' validation outputs at 0.5
    probs = predict(model, val)
    assert challenge_score(val.labels, probs, val.class_names) == pytest.approx(max(values), abs=1e-6)


def test_no_challenge_score_outside_its_classes(splits):
    train, val = splits
    with pytest.raises(ValueError, match="val_challenge_score' is not among the validation metrics"):
        fit(TinyNet(), train, val, TrainConfig(epochs=1, metric="val_challenge_score", threads=1))
