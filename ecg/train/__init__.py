"""Training one model: `fit`, its configuration, checkpoints and inference. Never imports ray or optuna.

    from ecg.train import TrainConfig, fit
    result = fit(model, train, val, TrainConfig(lr=1e-3, epochs=30), on_epoch=print)
"""
from ecg.train.checkpoint import load_checkpoint, save_checkpoint
from ecg.train.config import TrainConfig, TrialConfig
from ecg.train.loop import EpochReport, FitResult, NonFiniteLossError, fit
from ecg.train.predict import predict

__all__ = [
    "EpochReport",
    "FitResult",
    "NonFiniteLossError",
    "TrainConfig",
    "TrialConfig",
    "fit",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
]
