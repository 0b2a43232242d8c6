"""`SearchOptions`: every knob of a search, one field per `launch.py` option, validated on construction.

Defaults that depend on the hardware are `None` here and resolved by `resolved()` against the machine (or
cluster) the search runs on: a CPU-only machine gets a small search that ends in minutes, a GPU machine the
study's sizes. The CPU defaults are sized so that `python launch.py --space ecgnet` on a 2-core laptop ends
within 10 minutes, Ray start and the winners' test evaluation included.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecg.selection import SELECTION_METRICS, best_so_far, metric_mode

SCHEDULERS = ("asha", "fifo")
SAMPLERS = ("tpe", "random")
# The selection metric's choices and its min/max rule live with the training loop that obeys them.
METRICS = SELECTION_METRICS


class OptionError(ValueError):
    """A bad search option; the message is one line naming the option and the value."""


@dataclass(frozen=True)
class HardwareDefaults:
    """The sizes a search gets when the user does not say: one set for CPU-only machines, one with GPUs."""

    n_records: int
    fs: int  # synthetic data only: sampling rate ...
    length: int  # ... and samples per record (10 s either way)
    num_samples: int
    max_epochs: int
    grace_period: int
    reduction_factor: int


# CPU: 1,000 synthetic records at 250 Hz x 2,500 samples, 12 trials of at most 6 epochs, ASHA rungs at 2 and 6
# epochs: with 2 concurrent 1-CPU trials the default ECGNet search ends well within 10 minutes on a 2-core
# machine (see docs/search.md for measured times).
CPU_DEFAULTS = HardwareDefaults(n_records=1000, fs=250, length=2500, num_samples=12, max_epochs=6,
                                grace_period=2, reduction_factor=3)
# GPU: the study's scale: 20,000 records at 500 Hz x 5,000 samples, 100 trials of up to 60 epochs.
GPU_DEFAULTS = HardwareDefaults(n_records=20000, fs=500, length=5000, num_samples=100, max_epochs=60,
                                grace_period=5, reduction_factor=3)


def _known_spaces() -> list[str]:
    from spaces import SPACES  # imported late: spaces imports the model registry

    return sorted(SPACES)


@dataclass
class SearchOptions:
    """One search. `None` means "the hardware default" (see `resolved`)."""

    space: str = "ecgnet"
    data: Path | None = None
    labels: Path | None = None
    task: str | None = None  # a benchmark's classes (ecg.data.tasks); None: the data's own labels (PTB-XL: all)
    split: str | None = None  # "official" | "stratified"; None: the data's convention
    skip_bad_records: bool = False  # load the readable records; run.json lists the others with the reason
    leads: int = 8  # the Hefei 8 (I, II, V1-V6) or all 12
    n_records: int | None = None
    num_samples: int | None = None
    max_epochs: int | None = None
    grace_period: int | None = None
    reduction_factor: int | None = None
    scheduler: str = "asha"
    sampler: str = "tpe"
    metric: str | None = None  # None: the data's convention (val_macro_auc PTB-XL, val_challenge_score cinc2021)
    seed: int = 0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    memory_per_trial: float | None = None  # GiB of RAM Ray reserves per trial; None: no reservation
    max_concurrent: int | None = None
    top_k: int = 3
    ensemble_candidates: int = 10
    results_dir: Path = Path("results")
    storage_path: Path | None = None
    address: str | None = None
    dashboard_host: str = "127.0.0.1"
    max_failures: int = 2
    verbose: bool = False  # -v: Ray Tune's own console output instead of search.progress's compact one
    resume: Path | None = None
    trust_run_folder: bool = False  # --resume without verifying the state digests (search.integrity)
    # Filled by `resolved()`: whether the defaults came from the GPU set, and the records' shape (`fs`, also
    # --fs: None means the hardware's rate for the synthetic set, 500 Hz for --data; `length` is always 10 s).
    gpu: bool | None = field(default=None, repr=False)
    fs: int | None = field(default=None, repr=False)
    length: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("data", "labels", "results_dir", "storage_path", "resume"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value).expanduser())
        if self.space not in _known_spaces():
            raise OptionError(f"--space {self.space!r} is unknown; choose one of {', '.join(_known_spaces())}")
        _positive("--n-records", self.n_records, minimum=10)
        _positive("--num-samples", self.num_samples)
        _positive("--max-epochs", self.max_epochs)
        _positive("--grace-period", self.grace_period)
        _positive("--reduction-factor", self.reduction_factor, minimum=2)
        _positive("--max-concurrent", self.max_concurrent)
        _positive("--top-k", self.top_k)
        _positive("--ensemble-candidates", self.ensemble_candidates)
        if self.max_epochs is not None and self.grace_period is not None and self.grace_period > self.max_epochs:
            raise OptionError(f"--grace-period {self.grace_period} is larger than --max-epochs {self.max_epochs}")
        _choice("--scheduler", self.scheduler, SCHEDULERS)
        _choice("--sampler", self.sampler, SAMPLERS)
        self._check_conventions()
        if not self.cpus_per_trial > 0:
            raise OptionError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial}")
        if self.memory_per_trial is not None and not self.memory_per_trial > 0:
            raise OptionError(f"--memory-per-trial must be > 0 (GiB), got {self.memory_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise OptionError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise OptionError(f"--gpus-per-trial above 1 must be a whole number, got {self.gpus_per_trial}")
        if self.max_failures < -1:
            raise OptionError(f"--max-failures must be >= 0 (or -1 for unlimited), got {self.max_failures}")
        if self.seed < 0:
            raise OptionError(f"--seed must be >= 0, got {self.seed}")
        if self.labels is not None and self.data is None:
            raise OptionError("--labels needs --data (the records the labels belong to)")
        _check_host("--dashboard-host", self.dashboard_host)

    def _check_conventions(self) -> None:
        """--task, --split, --leads, --fs and --metric against each other and the data; the metric defaults
        to the data's convention."""
        if self.task is not None and self.data is None:
            raise OptionError(f"--task {self.task} needs --data (a PTB-XL folder, or CinC 2021 WFDB records)")
        if self.split is not None:
            _choice("--split", self.split, ("official", "stratified"))
        if self.leads not in (8, 12):
            raise OptionError(f"--leads must be 8 or 12, got {self.leads}")
        _positive("--fs", self.fs, minimum=50)
        if self.metric is None:
            self.metric = self.convention()["metric"]
        _choice("--metric", self.metric, METRICS)
        if self.metric == "val_challenge_score" and not str(self.task).startswith("cinc2021"):
            raise OptionError("--metric val_challenge_score needs --task cinc2021 (the Challenge's scored classes)")

    def convention(self) -> dict[str, str | None]:
        """The task, split and selection metric this search follows (`ecg.data.tasks`); a refusal as OptionError.
        A --data path that does not exist gets the plain convention here; check_environment refuses it."""
        from ecg.data.errors import DataError
        from ecg.data.source import DataSpec

        if self.data is not None and not self.data.exists():
            values: dict[str, str | None] = {"task": self.task, "split": self.split, "metric": "val_micro_f1"}
        else:
            try:
                values = DataSpec(data=self.data, task=self.task, split=self.split).convention()
            except DataError as err:
                raise OptionError(str(err)) from None
        if self.metric is not None:
            values["metric"] = self.metric
        return values

    @property
    def metric_mode(self) -> str:
        """"min" for the loss, "max" for every score."""
        return metric_mode(self.metric)

    @property
    def trial_metric(self) -> str:
        """What ASHA's rungs and the sampler compare: the trial's best `metric` so far (see `best_so_far`)."""
        return best_so_far(self.metric)

    def check_environment(self, local_gpus: int | None = None) -> None:
        """Refuse what the file system or the machine cannot give, before Ray starts (one-line OptionError).

        The GPU check here covers a local run; with `--address` the cluster's nodes are checked after
        connecting (`search.cluster.check_capacity`).
        """
        if self.data is not None and not self.data.exists():
            raise OptionError(f"--data {self.data}: no such file or folder")
        if self.labels is not None and not self.labels.is_file():
            raise OptionError(f"--labels {self.labels}: no such file")
        _check_writable("--results-dir", self.results_dir)
        if self.storage_path is not None:
            _check_writable("--storage-path", self.storage_path)
        if self.address is None and self.gpus_per_trial:
            gpus = local_gpus if local_gpus is not None else _local_gpu_count()
            if self.gpus_per_trial > gpus:
                raise OptionError(f"--gpus-per-trial {self.gpus_per_trial:g} is more than this machine has ({gpus} GPUs)")
        if self.address is None:
            # A trial asking for more than the machine has would wait for a node that never comes.
            cpus = _local_cpu_count()
            if self.cpus_per_trial > cpus:
                raise OptionError(f"--cpus-per-trial {self.cpus_per_trial:g} is more than this machine has ({cpus} CPUs)")
            memory = _local_memory_gib()
            if self.memory_per_trial is not None and self.memory_per_trial > memory:
                raise OptionError(f"--memory-per-trial {self.memory_per_trial:g} is more than this machine has "
                                  f"({memory:.1f} GiB)")

    def resolved(self, gpus_available: float) -> "SearchOptions":
        """A copy with every `None` default filled for hardware with `gpus_available` GPUs."""
        gpu = gpus_available > 0 and self.gpus_per_trial != 0
        base = GPU_DEFAULTS if gpu else CPU_DEFAULTS
        values: dict[str, Any] = {}
        for name in ("n_records", "num_samples", "max_epochs", "grace_period", "reduction_factor"):
            if getattr(self, name) is None:
                values[name] = getattr(base, name)
        max_epochs = values.get("max_epochs", self.max_epochs)
        if values.get("grace_period", self.grace_period) > max_epochs:
            values["grace_period"] = max_epochs
        if self.gpus_per_trial is None:
            values["gpus_per_trial"] = 1.0 if gpu else 0.0
        fs = self.fs or (base.fs if self.data is None else 500)  # real data: 500 Hz unless --fs says otherwise
        values.update(gpu=gpu, fs=fs, length=fs * base.length // base.fs)  # 10 s at any rate
        return dataclasses.replace(self, **values)

    def space_context(self, fs: int, length: int) -> Any:
        """The `spaces.SpaceContext` of this (resolved) search for records of `length` samples at `fs` Hz."""
        from spaces import SpaceContext  # imported late, as in _known_spaces

        return SpaceContext(gpu=bool(self.gpu), length=length, max_epochs=self.max_epochs, seed=self.seed,
                            metric=self.metric, fs=fs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _positive(flag: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and (not isinstance(value, int) or value < minimum):
        raise OptionError(f"{flag} must be an integer >= {minimum}, got {value}")


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(f"{flag} {value!r} is unknown; choose one of {', '.join(choices)}")


def _check_writable(flag: str, path: Path) -> None:
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


def _check_host(flag: str, host: str) -> None:
    """An interface address to listen on: an IPv4/IPv6 literal or "localhost" (refused before Ray starts)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise OptionError(f"{flag} {host!r} is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for "
                              "every interface)") from None


def _local_cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, as a container or taskset limits it)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _local_memory_gib() -> float:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
