"""Inference: logits for a split already on the device (the loop's validation), probabilities for a dataset."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ecg.data.dataset import ECGDataset
from ecg.train.device import DeviceSplit, autocast, bf16_enabled, enable_cudnn_autotune, resolve_device


def infer_logits(model: nn.Module, split: DeviceSplit, *, batch_size: int, bf16: bool) -> torch.Tensor:
    """fp32 logits [N, C] on the split's device, in eval mode (no dropout, BatchNorm running statistics)."""
    model.eval()
    device = split.signals.device
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            x, extra, _ = split.batch(slice(start, start + batch_size))
            with autocast(device, bf16):
                outputs.append(model(x, extra).float())
    if not outputs:
        raise ValueError("cannot run inference on an empty split")
    return torch.cat(outputs)


def predict(model: nn.Module, dataset: ECGDataset, *, device: str | torch.device = "cpu", batch_size: int = 256,
            bf16: bool | None = None) -> np.ndarray:
    """Probabilities [N, C] (float32, on the host) for every record of `dataset`.

    `bf16` None means autocast on CUDA and off on CPU, as in training.
    """
    device = resolve_device(device)
    enable_cudnn_autotune(device)  # the batches have one shape (and a shorter last one)
    model.to(device)
    split = DeviceSplit.from_dataset(dataset, device)
    logits = infer_logits(model, split, batch_size=batch_size, bf16=bf16_enabled(device, bf16))
    return torch.sigmoid(logits).cpu().numpy()
