"""What the file system and the machine can give a search, checked before Ray starts (one-line OptionError).

`SearchOptions` checks each value on its own; this module probes the world: the data and labels exist, the
results and storage folders can be written (a real write: root passes access checks on read-only mounts), a
warm-start file reads, and a local search's trials fit this machine's CPUs, memory and GPUs. With `--address`
the cluster's nodes are checked after connecting (`search.cluster.check_capacity`).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from search.options import OptionError, SearchOptions


def check(options: SearchOptions, local_gpus: int | None = None) -> None:
    """Refuse what the file system or this machine cannot give (`local_gpus`: the GPU count, else torch's)."""
    if options.data is not None and not options.data.exists():
        raise OptionError(f"--data {options.data}: no such file or folder")
    if options.labels is not None and not options.labels.is_file():
        raise OptionError(f"--labels {options.labels}: no such file")
    if options.warm_start is not None and options.warm_start != "study":
        from spaces.warm_start import WarmStartError, read_configs_csv

        try:  # a bad file is refused before Ray starts
            read_configs_csv(Path(options.warm_start).expanduser())
        except WarmStartError as err:
            raise OptionError(str(err)) from None
    check_writable("--results-dir", options.results_dir)
    if options.storage_path is not None:
        check_writable("--storage-path", options.storage_path)
    if options.address is not None:
        return
    if options.gpus_per_trial:
        gpus = local_gpus if local_gpus is not None else local_gpu_count()
        if options.gpus_per_trial > gpus:
            raise OptionError(f"--gpus-per-trial {options.gpus_per_trial:g} is more than this machine has ({gpus} GPUs)")
    # A trial asking for more than the machine has would wait for a node that never comes.
    cpus = local_cpu_count()
    if options.cpus_per_trial > cpus:
        raise OptionError(f"--cpus-per-trial {options.cpus_per_trial:g} is more than this machine has ({cpus} CPUs)")
    memory = local_memory_gib()
    if options.memory_per_trial is not None and options.memory_per_trial > memory:
        raise OptionError(f"--memory-per-trial {options.memory_per_trial:g} is more than this machine has "
                          f"({memory:.1f} GiB)")


def check_writable(flag: str, path: Path) -> None:
    """The folder (or the nearest existing parent it would be created in) must be writable."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OptionError(f"{flag} {path}: {probe} is a file, not a folder")
    # A real write, not os.access: root passes access checks on read-only mounts and on chmod 555 folders.
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise OptionError(f"{flag} {path}: {probe} is not writable ({exc.strerror})") from None


def local_cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, as a container or taskset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


# The device nodes through which torch reaches a GPU on Linux: NVIDIA's driver, AMD's (ROCm), WSL's.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def local_gpu_count() -> int:
    """The GPUs torch sees on this machine (`torch.cuda.device_count()`). On Linux without a GPU driver's device
    node the answer is 0 without importing torch, so a CPU machine's start does not wait for torch's import
    before Ray's (`search.runner` imports it while Ray starts)."""
    if sys.platform.startswith("linux") and not any(os.path.exists(node) for node in GPU_DEVICE_NODES):
        return 0
    import torch

    return torch.cuda.device_count()
