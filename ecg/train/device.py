"""Where training runs: the device, CPU threads, autocast, and a split's arrays as device tensors.

The loop has one code path for every device; what differs between CPU and GPU is decided here, in a few
small named functions, so the CPU tests exercise the same slicing, augmentation and autocast code a GPU runs.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ecg.data.dataset import ECGDataset


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device, failing clearly (ValueError, one line) for a name torch does not know, a device other than
    the CPU or CUDA, or CUDA asked for but absent."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(device)[:40]!r} is not one torch knows: use cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r}: training runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available on this machine")
    return device


def set_threads(threads: int | None) -> None:
    """Use `threads` CPU threads for torch's intra-op work (None leaves torch's default)."""
    if threads is not None:
        torch.set_num_threads(int(threads))


def set_flush_denormals(device: torch.device, enabled: bool) -> None:
    """On CPU, have the floating-point unit treat denormal numbers (below ~1.2e-38) as zero.

    x86 arithmetic on denormals is many times slower, and late in training a recurrent model's values drift
    into that range: a GRU trial's epochs slowed to a third of their speed, and kept it with this on, its
    validation F1 unchanged (the figures: docs/training.md). The setting holds for
    the calling thread, which does all the work with one intra-op thread (a CPU search trial's default), and
    stays on for the process: torch offers no way to read the previous setting back.
    """
    if enabled and device.type == "cpu":
        torch.set_flush_denormal(True)


def enable_cudnn_autotune(device: torch.device) -> None:
    """On CUDA, have cuDNN time its algorithms for each new input shape and keep the fastest
    (`torch.backends.cudnn.benchmark`). The shapes here are fixed (every training batch but a shorter last one,
    then the validation batches: a few shapes per run), so the timing is paid in the first epoch and every later
    batch runs the fastest kernels; with shapes that kept changing it would be paid again at each. The setting is
    process-wide and stays on (a Ray trial's worker process trains on one device)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


# How CUDA reports running out of memory besides torch.OutOfMemoryError: cuDNN and cuBLAS fail to allocate
# their workspaces or handles and say so in a RuntimeError, and a kernel launch can fail with "out of memory".
OUT_OF_MEMORY_MESSAGES = ("out of memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is the device running out of memory: torch.OutOfMemoryError, or a RuntimeError whose
    message says so in one of CUDA's other ways (OUT_OF_MEMORY_MESSAGES). Such an error would only happen again
    on a retry with the same batch size and device share."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and any(text.lower() in message.lower() for text in OUT_OF_MEMORY_MESSAGES)


def bf16_enabled(device: torch.device, requested: bool | None) -> bool:
    """Whether to autocast to bf16: as `requested`, or when None, on CUDA only (bf16 pays off there; on CPU
    it is slower than fp32, so it is off unless asked for)."""
    return device.type == "cuda" if requested is None else bool(requested)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` (a no-op when disabled). Recurrent layers leave it and run in fp32
    (`ecg.models.recurrent.RecurrentBranch`; docs/training.md, "On a GPU")."""
    if not enabled:  # nothing to switch off (the loop never nests it), and any device type will do, "meta" too
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """`array` on `device` without a host copy where possible.

    Arrays may be read-only views of Ray's object store. torch.from_numpy shares their memory and warns that
    they are not writable; the loop only ever reads (indexes) these tensors, so the warning does not apply.
    """
    array = np.ascontiguousarray(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tensor = torch.from_numpy(array)
    return tensor.to(device, non_blocking=device.type == "cuda")


@dataclass
class DeviceSplit:
    """A split's arrays moved to the device once: signals int16 (Hefei units), the per-record inputs
    (`ECGDataset.extra_inputs()`: age/sex, then any attached features), labels."""

    signals: torch.Tensor
    extra: torch.Tensor
    labels: torch.Tensor
    units_per_mv: float

    @classmethod
    def from_dataset(cls, dataset: ECGDataset, device: torch.device) -> "DeviceSplit":
        if dataset.signals is None:
            raise ValueError("this dataset holds labels only; training needs signals")
        return cls(
            signals=as_tensor(dataset.signals, device),
            extra=as_tensor(dataset.extra_inputs(), device),
            labels=as_tensor(dataset.labels, device).float(),
            units_per_mv=float(dataset.units_per_mv),
        )

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Signals in float millivolts, per-record inputs and labels of the records at `index`."""
        # copy=True: `index` may be a slice (a view), and the stored signals must never be scaled in place.
        x = self.signals[index].to(torch.float32, copy=True).div_(self.units_per_mv)
        return x, self.extra[index], self.labels[index]
