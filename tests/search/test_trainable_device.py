"""The trainable measures a trial's costs on the device the trial trains on (the model moved there first).

On a GPU machine a trial with `--max-params` or `--max-latency-ms` measured a model still on the CPU with
inputs made on CUDA, and every trial ended in a device mismatch. A CPU machine has a second device type to
prove the order with: "meta" (shapes, no data). `search.trainable.train_trial` runs here in this process with
Ray's trial context faked and the trial's device made "meta"; a budget no model meets ends the trial at its
costs, before any training (which meta tensors could not do). The same path on a real GPU: tests/gpu/.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow.fs
import pytest
import torch

import search.trainable as trainable
from ecg.data.dataset import ECGDataset
from ecg.train.costs import Budget
from search.data import TrialData
from search.trial_failures import FAULT_ENV


def dataset(n: int, seed: int) -> ECGDataset:
    rng = np.random.default_rng(seed)
    return ECGDataset(signals=rng.integers(-500, 500, (n, 8, 5000)).astype(np.int16),
                      age=np.full(n, 50.0, np.float32), sex=np.zeros(n, np.float32),
                      labels=(rng.random((n, 3)) < 0.3).astype(np.uint8), class_names=["a", "b", "c"],
                      record_ids=[f"r{seed}_{i}" for i in range(n)])


@pytest.fixture
def fake_trial(monkeypatch, tmp_path) -> list[dict]:
    """Ray's trial context for a trial given half a GPU (id 0) whose device is "meta"; the reports it makes."""
    reports: list[dict] = []
    storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(tmp_path / "trial"),
                              trial_dir_name="train_trial_t1_00001_1_family=ecgnet_2026-01-01")
    context = SimpleNamespace(get_storage=lambda: storage, get_trial_id=lambda: "t1",
                              get_trial_resources=lambda: SimpleNamespace(required_resources={"CPU": 1, "GPU": 0.5}))
    monkeypatch.setattr(trainable.ray.tune, "get_context", lambda: context)
    monkeypatch.setattr(trainable.ray.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(trainable.ray.tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr(trainable.ray, "get_gpu_ids", lambda: [0])
    monkeypatch.setattr(trainable.ray, "get_runtime_context", lambda: SimpleNamespace(get_node_id=lambda: "node"))
    monkeypatch.setattr(trainable, "trial_device", lambda gpus, gpu_ids, cuda_available: "meta")
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # this test process keeps its threads
    monkeypatch.delenv(FAULT_ENV, raising=False)
    return reports


def test_a_trial_measures_its_costs_on_its_own_device(fake_trial) -> None:
    data = TrialData(train=dataset(4, 1), val=dataset(2, 2))
    trainable.train_trial({"family": "ecgnet"}, data, Budget(max_params=1))
    [report] = fake_trial  # one report: over budget, measured on the trial's device, never trained
    assert report["device"] == "meta" and report["gpu_ids"] == "0" and report["epoch"] == 0
    assert report["params"] > 1 and report["macs"] > 0 and report["over_budget"].startswith("params ")
