"""predict: probabilities of every record, in eval mode, from int16 signals scaled to millivolts."""
from __future__ import annotations

import numpy as np
import torch

from ecg.data.dataset import UNITS_PER_MV
from ecg.train import predict


def test_predict_matches_the_model_applied_by_hand(splits, tiny_model):
    _, val = splits
    model = tiny_model()
    probs = predict(model, val, batch_size=50)  # three batches, the last one short
    assert probs.shape == (len(val), val.n_classes) and probs.dtype == np.float32
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(val.signals.astype(np.float32) / UNITS_PER_MV)
        expected = torch.sigmoid(model(x, torch.from_numpy(val.age_sex_features()))).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert not model.training
