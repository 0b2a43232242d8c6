"""What differs between CPU and GPU, tested on the CPU: the dtype recurrent layers compute in under the trial's
autocast policy, which errors count as running out of memory, and cuDNN autotuning being switched on for CUDA
only. The same paths on a real GPU: tests/gpu/."""
from __future__ import annotations

import pytest
import torch

from ecg.models import create_model
from ecg.train.device import autocast, bf16_enabled, enable_cudnn_autotune, is_out_of_memory

CPU = torch.device("cpu")


def recurrent_dtypes(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[torch.dtype, torch.dtype, bool]]:
    """(input dtype, output dtype, autocast on) as each nn.GRU / nn.LSTM of `model` ran under the trial's bf16
    autocast policy, forced on (the policy a CUDA trial has by default; on the CPU bf16 is opt-in)."""
    seen = []

    def record(module, inputs, output) -> None:
        seen.append((inputs[0].dtype, output[0].dtype, torch.is_autocast_enabled(CPU.type)))

    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.register_forward_hook(record)
    with torch.no_grad(), autocast(CPU, bf16_enabled(CPU, True)):
        logits = model(x, torch.zeros(x.shape[0], 4))
    assert logits.dtype in (torch.float32, torch.bfloat16)  # the layers after it are autocast again
    return seen


@pytest.mark.parametrize("family, options", [
    ("gru", {"version": "v3", "segmentation": "10x10"}),
    ("lstm", {"version": "v2", "segmentation": "10x10"}),
    ("lstm", {"version": "v1", "segmentation": "1"}),
])
def test_recurrent_layers_compute_in_fp32_outside_bf16_autocast(family, options) -> None:
    # Without the decision, CPU autocast runs the LSTM in bf16 (its mkldnn kernel is on the bf16 list) and CUDA
    # autocast runs cuDNN's GRU and LSTM in fp16; with it, both run in fp32 with autocast off around them.
    torch.manual_seed(0)
    model = create_model(family, n_leads=2, n_classes=3, length=100, hidden=8, fc_hidden=8, use_age_sex=True,
                         **options).eval()
    seen = recurrent_dtypes(model, torch.randn(3, 2, 100))
    assert seen and all(dtypes == (torch.float32, torch.float32, False) for dtypes in seen), seen


def test_a_plain_lstm_under_cpu_autocast_computes_in_bf16() -> None:
    """Why the decision is needed on the CPU too: the test above would catch its removal."""
    lstm = torch.nn.LSTM(4, 8, batch_first=True)
    with autocast(CPU, True):
        assert lstm(torch.randn(2, 5, 4))[0].dtype == torch.bfloat16


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total capacity)"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some other API "
                 "call, so the stacktrace below might be incorrect."),
])
def test_cuda_out_of_memory_in_any_of_its_forms_is_out_of_memory(error) -> None:
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", [
    RuntimeError("Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"),
    RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"),
    RuntimeError("CUDA error: an illegal memory access was encountered"),
    ValueError("out of memory"),  # not an error CUDA raises
    OSError(28, "No space left on device"),
])
def test_other_errors_are_not_out_of_memory(error) -> None:
    assert not is_out_of_memory(error)


def test_cudnn_autotuning_is_switched_on_for_cuda_only(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    enable_cudnn_autotune(CPU)
    assert torch.backends.cudnn.benchmark is False
    enable_cudnn_autotune(torch.device("cuda"))  # a flag: setting it needs no GPU
    assert torch.backends.cudnn.benchmark is True


@pytest.mark.parametrize("name, message", [("tpu", "is not one torch knows"), ("meta", "training runs on cpu or cuda"),
                                           ("cpu", None)])
def test_a_device_is_cpu_or_cuda_or_refused_in_one_line(name, message) -> None:
    from ecg.train.device import resolve_device

    if message is None:
        assert resolve_device(name).type == "cpu"
        return
    with pytest.raises(ValueError, match=message):
        resolve_device(name)
