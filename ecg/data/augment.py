"""Train-time augmentation as tensor operations on the batch's own device (no per-batch host work).

Per record: amplitude scaled by a factor in [1 - scale, 1 + scale], a vertical shift in [-shift, shift] mV
added (the same for all leads of the record), and optionally a random window of `crop` samples.

There is deliberately no vertical flip (x -> -x): inverting a lead mirrors the electrical axis, so left axis
deviation would look like right axis deviation (and inverted T waves like upright ones); the label would
no longer match the signal. Likewise no lead swapping or time reversal.
"""
from __future__ import annotations

import torch


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    """Uniform draws made on the generator's device (so a CPU generator is reproducible) and moved to `device`."""
    where = generator.device if generator is not None else device
    draws = torch.rand(shape, generator=generator, device=where)
    return (low + (high - low) * draws).to(device)


def augment(x: torch.Tensor, generator: torch.Generator | None = None, *, scale: float = 0.1,
            shift: float = 0.1, crop: int | None = None) -> torch.Tensor:
    """Augmented copy of `x [B, leads, T]` (float, mV); `[B, leads, crop]` when `crop` is given."""
    if x.ndim != 3 or not x.is_floating_point():
        raise ValueError(f"augment expects a float tensor [B, leads, T], got {tuple(x.shape)} {x.dtype}")
    if scale < 0 or shift < 0:
        raise ValueError(f"scale ({scale}) and shift ({shift}) must be non-negative")
    batch, leads, length = x.shape
    factor = _uniform((batch, 1, 1), 1.0 - scale, 1.0 + scale, generator, x.device).to(x.dtype)
    offset = _uniform((batch, 1, 1), -shift, shift, generator, x.device).to(x.dtype)
    out = x * factor + offset
    if crop is not None:
        if not 0 < crop <= length:
            raise ValueError(f"crop {crop} must be between 1 and the record length {length}")
        starts = _uniform((batch,), 0.0, 1.0, generator, x.device).mul(length - crop + 1).long().clamp_(max=length - crop)
        index = starts[:, None] + torch.arange(crop, device=x.device)
        out = out.gather(2, index[:, None, :].expand(batch, leads, crop))
    return out
