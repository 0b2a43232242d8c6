"""Checkpoints as a folder that never needs unpickling of user objects.

- `model.safetensors`: the model weights (and `best_model.safetensors`, the best epoch's, when they differ);
- `training_state.pt`: optimiser and scheduler state, read back with `torch.load(weights_only=True)`;
- `meta.json`: epoch, best epoch and metrics, history, the training config and whatever the caller adds
  (model family and options, tuned thresholds). Written last, so a folder with meta.json is complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
BEST_MODEL_FILE = "best_model.safetensors"
STATE_FILE = "training_state.pt"
META_FILE = "meta.json"
_WEIGHT_KEYS = {"model": MODEL_FILE, "best_model": BEST_MODEL_FILE}


def _weights_for_file(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights); cloned CPU copies never do.
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in weights.items()}


def save_checkpoint(state: dict[str, Any], directory: str | Path) -> Path:
    """Write `state` (`model`, optional `best_model`, `meta`, and any other entries such as `optimizer` and
    `scheduler`, which go to training_state.pt) into `directory`; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if "model" not in state:
        raise ValueError("a checkpoint state needs a 'model' entry (the model's state_dict)")
    for key, filename in _WEIGHT_KEYS.items():
        path = directory / filename
        if state.get(key) is not None:
            save_file(_weights_for_file(state[key]), str(path))
        elif path.exists():
            path.unlink()  # a stale best model from an earlier save into the same folder
    rest = {k: v for k, v in state.items() if k not in _WEIGHT_KEYS and k != "meta"}
    torch.save(rest, directory / STATE_FILE)
    (directory / META_FILE).write_text(json.dumps(state.get("meta", {}), indent=2, default=_json_default))
    return directory


def load_checkpoint(directory: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state `save_checkpoint` wrote: weights from safetensors, the rest with weights_only=True."""
    directory = Path(directory)
    missing = [name for name in (MODEL_FILE, STATE_FILE, META_FILE) if not (directory / name).exists()]
    if missing:
        raise FileNotFoundError(f"{directory} is not a complete checkpoint: missing {', '.join(missing)}")
    device = str(map_location)
    state: dict[str, Any] = torch.load(directory / STATE_FILE, map_location=map_location, weights_only=True)
    state["model"] = load_file(str(directory / MODEL_FILE), device=device)
    best = directory / BEST_MODEL_FILE
    state["best_model"] = load_file(str(best), device=device) if best.exists() else None
    state["meta"] = json.loads((directory / META_FILE).read_text())
    return state


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays (thresholds, metrics) as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
