"""The CUDA path, run on a GPU (bench/gpu_check.sh's cuda_tests step; skipped with the reason elsewhere).

Training a few steps on CUDA in bf16 (cuDNN autotuning on, recurrent layers in fp32), prediction against the
CPU's, the costs measured on the device, a real out-of-memory error classified, and one launch.py search at
half a GPU per trial: two trials on the one GPU at once, their costs measured there under a budget, the
winners evaluated on the device. Tiny sizes: the whole set takes about a minute on a GPU, most of it Ray.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import torch

from ecg.data.dataset import UNITS_PER_MV, ECGDataset
from ecg.models import create_model
from ecg.train import TrainConfig, fit, predict
from ecg.train.costs import CostMeter, model_costs
from ecg.train.device import is_out_of_memory

ROOT = Path(__file__).resolve().parents[2]
LEADS, LENGTH, CLASSES = 8, 1000, 4
SMALL = {  # small members of two families: a convolutional one and a recurrent one
    "ecgnet": {"version": "v1", "width": 8, "width_1d": 16, "blocks_2d": 1, "blocks_1d": 2, "downsamples_1d": 2},
    "gru": {"version": "v3", "segmentation": "10x100", "hidden": 16, "fc_hidden": 16, "use_age_sex": True},
}


def records(n: int, seed: int) -> ECGDataset:
    """`n` records of noise at about 1 mV, with class c's sine wave on lead c where the record has class c."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, CLASSES)) < 0.4).astype(np.uint8)
    t = np.arange(LENGTH) / 100.0
    mv = 0.5 * rng.standard_normal((n, LEADS, LENGTH))
    for c in range(CLASSES):
        mv[:, c] += labels[:, c:c + 1] * np.sin(2 * np.pi * (2.0 + 3 * c) * t)
    return ECGDataset(signals=np.round(mv * UNITS_PER_MV).astype(np.int16), age=rng.uniform(20, 90, n),
                      sex=rng.integers(0, 2, n).astype(np.float32), labels=labels,
                      class_names=[f"c{i}" for i in range(CLASSES)], record_ids=[f"r{seed}_{i}" for i in range(n)],
                      fs=100)


def module_at(path: Path) -> ModuleType:
    """The module in the file at `path`, imported by its path: a top-level `tests` package that some
    distributions install would shadow `tests.search...`."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(family, n_leads=LEADS, n_classes=CLASSES, length=LENGTH, **SMALL[family])


def dtypes_seen(model: torch.nn.Module, kinds: tuple[type, ...]) -> dict[str, set[torch.dtype]]:
    """Hook every module of `kinds`: the dtypes of its input and of its output, by module kind name."""
    seen: dict[str, set[torch.dtype]] = {}

    def record(module, inputs, output) -> None:
        output = output[0] if isinstance(output, tuple) else output
        seen.setdefault(type(module).__name__, set()).update({inputs[0].dtype, output.dtype})

    for module in model.modules():
        if isinstance(module, kinds):
            module.register_forward_hook(record)
    return seen


@pytest.mark.parametrize("family", list(SMALL))
def test_fit_trains_a_few_steps_on_cuda_in_bf16_and_predicts(cuda, family, monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    train, val = records(96, 1), records(32, 2)
    model = small(family)
    seen = dtypes_seen(model, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear, torch.nn.RNNBase))
    result = fit(model, train, val, TrainConfig(epochs=2, batch_size=32, lr=1e-3, schedule="none"), device=cuda)

    assert torch.backends.cudnn.benchmark is True  # fit switched cuDNN's autotuning on for CUDA
    assert result.epochs_run == 2 and all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"])
                                          for h in result.history)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert torch.bfloat16 in seen["Linear"]  # the default on CUDA: bf16 autocast
    if family == "gru":
        assert seen["GRU"] == {torch.float32}  # the recurrent layer in fp32, outside autocast
    probs = predict(model, val, device=cuda)
    assert probs.shape == (32, CLASSES) and probs.dtype == np.float32 and np.isfinite(probs).all()


@pytest.mark.parametrize("family", list(SMALL))
def test_predict_on_cuda_matches_the_cpu(cuda, family) -> None:
    val = records(48, 3)
    model = small(family)
    on_cpu = predict(model, val, device="cpu", bf16=False)
    fp32 = predict(model, val, device=cuda, bf16=False)
    bf16 = predict(model, val, device=cuda)  # CUDA's default: bf16 autocast
    # TF32 convolutions and matrix products on CUDA: close, not equal; bf16 keeps 8 bits of mantissa.
    np.testing.assert_allclose(fp32, on_cpu, atol=2e-3)
    np.testing.assert_allclose(bf16, on_cpu, atol=5e-2)


def test_costs_are_measured_on_cuda_where_the_model_is(cuda) -> None:
    model = small("ecgnet").to(cuda)
    meter = CostMeter(model, n_leads=LEADS, length=LENGTH, device=cuda, bf16=True)
    metrics = meter.metrics()
    assert metrics["params"] == sum(p.numel() for p in model.parameters()) and metrics["macs"] > 0
    assert metrics["latency_ms_b1"] > 0 and metrics["latency_ms_b64"] > 0 and metrics["peak_mem_mb"] > 0
    with pytest.raises(ValueError, match="the model's weights are on cpu but its costs are measured on cuda"):
        model_costs(small("ecgnet"), n_leads=LEADS, length=LENGTH, device=cuda)


def test_a_real_cuda_out_of_memory_error_is_classified_as_out_of_memory(cuda) -> None:
    total = torch.cuda.get_device_properties(cuda).total_memory
    with pytest.raises(RuntimeError) as caught:
        torch.empty(4 * total, dtype=torch.uint8, device=cuda)  # four times the GPU's memory
    assert is_out_of_memory(caught.value), caught.value


def test_two_trials_share_the_gpu_through_launch_and_winners_are_evaluated_on_it(cuda, tmp_path) -> None:
    """launch.py at --gpus-per-trial 0.5: both trials on GPU 0 at once (each holds at the end of its first epoch
    until both have got there), trained on CUDA, their costs measured there under a --max-params budget they
    meet, and the winners evaluated on CUDA."""
    packing = module_at(ROOT / "tests" / "search" / "test_gpu_packing.py")  # its placements and peak_use

    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "ECG_SEARCH_FAULT": "hold@1;n=2"}
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--space", "ecgnet", "--gpus-per-trial", "0.5",
                           "--num-samples", "2", "--max-concurrent", "2", "--scheduler", "fifo", "--n-records", "120",
                           "--fs", "100", "--max-epochs", "1", "--grace-period", "1", "--top-k", "1", "--seed", "0",
                           "--max-params", "100000000", "--results-dir", str(results)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run_dir = next(results.iterdir())
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"gpu_ids": str})
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}, trials
    assert set(trials["device"]) == {"cuda"} and list(trials["gpu_ids"]) == ["0", "0"]
    assert (trials["params"] > 0).all() and (trials["latency_ms_b1"] > 0).all() and (trials["peak_mem_mb"] > 0).all()
    most, per_gpu, worst = packing.peak_use(packing.placements(run_dir, run_dir / "tune"), 0.5)
    assert most == 2 and list(per_gpu.values()) == [2] and worst <= 1.0  # both on the one GPU at once
    assert json.loads((run_dir / "run.json").read_text())["evaluation_device"] == "cuda"
    assert (run_dir / "test_results.csv").exists()
