"""The CUDA test set: what runs on a GPU and nowhere else, run by bench/gpu_check.sh's first step.

Every test takes the `cuda` fixture: on a machine without CUDA the test is skipped with the reason, so the set
is collected everywhere (the suite, CI) and costs nothing there; with `ECG_REQUIRE_CUDA=1` (gpu_check.sh on a
GPU machine sets it) a missing CUDA device fails the test instead, so the check never passes on skips.
"""
from __future__ import annotations

import os

import pytest
import torch

REQUIRE_CUDA = "ECG_REQUIRE_CUDA"
NO_CUDA = "no CUDA device on this machine: the CUDA test set runs on a GPU machine (bench/gpu_check.sh)"


@pytest.fixture
def cuda() -> torch.device:
    """The CUDA device; skips the test where there is none (fails it under ECG_REQUIRE_CUDA=1)."""
    if not torch.cuda.is_available():
        if os.environ.get(REQUIRE_CUDA) == "1":
            pytest.fail(f"{REQUIRE_CUDA}=1 but torch {torch.__version__} sees no CUDA device")
        pytest.skip(NO_CUDA)
    return torch.device("cuda")

