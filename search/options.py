"""`SearchOptions`: every knob of a search, one field per `launch.py` option, validated on construction.

Defaults that depend on the hardware are `None` here; `resolved()` fills them for the machine (or cluster) the
search runs on and returns a `ResolvedOptions`, which alone has `gpu` and `length`: a CPU-only machine gets a
small search that ends in minutes, a GPU machine the study's sizes. The CPU defaults are sized so that
`python launch.py --space ecgnet` on a 2-core laptop ends within 10 minutes, Ray start and the winners' test
evaluation included. What the file system and the machine can give is checked apart, by `search.environment`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecg import values
from ecg.selection import COST_OBJECTIVES, SELECTION_METRICS, best_so_far, metric_mode

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


def option(default: Any, help: str, *, hardware_default: bool = False, choices: tuple[Any, ...] | None = None,
           metavar: str | None = None, short: str | None = None) -> Any:
    """A SearchOptions field that is also a launch.py option: `help` is its --help text ("{spaces}" names the
    spaces, "{cpu.x}"/"{gpu.x}" the hardware defaults); `hardware_default` appends the CPU and GPU defaults of
    the field of that name; `choices` are checked by argparse (the others here in `__post_init__`)."""
    return field(default=default, metadata={"help": help, "hardware_default": hardware_default, "choices": choices,
                                            "metavar": metavar, "short": short})


@dataclass
class SearchOptions:
    """One search: every field with `option(...)` metadata is a launch.py option of the same name (`launch.py`
    builds its parser from these fields). `None` means "the hardware default" (see `resolved`)."""

    space: str = option("ecgnet", "search space: {spaces}")
    data: Path | None = option(
        None, "records: a Hefei folder, a WFDB folder or an .npz (default: the built-in synthetic set, "
              "{cpu.fs} Hz x {cpu.length} samples without a GPU, {gpu.fs} Hz x {gpu.length} with one)")
    labels: Path | None = option(None, "labels CSV for a WFDB folder (record, labels, age, sex)")
    skip_bad_records: bool = option(
        False, "load the readable records when some cannot be read; run.json lists the others with the reason "
               "(default: refuse, one line counting them)")
    task: str | None = option(
        None, "a benchmark's classes: PTB-XL's all, diagnostic, subdiagnostic, superdiagnostic, form, rhythm; "
              "cinc2021 (26 scored diagnoses) or cinc2021+unscored (default: the data's own labels; PTB-XL: all)")
    split: str | None = option(
        None, "official (PTB-XL's strat_fold 1-8/9/10) or stratified 7:1:2 (default: official for PTB-XL, else "
              "stratified)", choices=("official", "stratified"))
    leads: int = option(8, "the 8 leads I, II, V1-V6, or all 12", choices=(8, 12))
    fs: int | None = option(
        None, "sampling rate every record is brought to, 10 s per record; PTB-XL reads records100/ at 100 "
              "(default: 500 for --data, {cpu.fs} for the synthetic set without a GPU)")
    n_records: int | None = option(None, "synthetic set size", hardware_default=True)
    num_samples: int | None = option(None, "trials to run", hardware_default=True)
    time_budget: float | None = option(
        None, "minutes the search trains at most, over every --resume of its run: then its trials stop and the "
              "winners are evaluated as when --num-samples trials have finished, whichever comes first (default: "
              "no limit)", metavar="MIN")
    max_epochs: int | None = option(None, "epochs per trial at most", hardware_default=True)
    grace_period: int | None = option(None, "epochs before ASHA may stop a trial", hardware_default=True)
    reduction_factor: int | None = option(None, "ASHA keeps 1/this of the trials at each rung", hardware_default=True)
    scheduler: str = option("asha", "early stopping: ASHA, or none (fifo)", choices=SCHEDULERS)
    sampler: str = option("tpe", "Optuna sampler", choices=SAMPLERS)
    metric: str | None = option(
        None, "what the search optimises (default: the data's convention: val_macro_auc for PTB-XL, "
              "val_challenge_score with --task cinc2021, else val_micro_f1)", choices=METRICS)
    seed: int = option(0, "seed of the split, the sampler and training")
    verbose: bool = option(
        False, "Ray Tune's full console output (every trial's config, a table each step) and the trials' own "
               "output (default: a compact status and one line per finished trial)", short="-v")
    cpus_per_trial: float = option(1.0, "CPUs per trial (its torch threads)")
    memory_per_trial: float | None = option(None, "RAM Ray reserves for each trial, in GiB (default: none reserved)",
                                            metavar="GIB")
    gpus_per_trial: float | None = option(
        None, "GPUs per trial, fractional to share a GPU (0.5: two trials per GPU) (default: 1 when the machine "
              "has GPUs, else 0)")
    max_concurrent: int | None = option(None, "trials at once at most (default: as many as the resources allow)")
    top_k: int = option(3, "best trials evaluated on the test split (and ensembled)")
    ensemble_candidates: int = option(10, "best finished trials the greedy ensemble selection may draw from")
    results_dir: Path = option(Path("results"), "where run folders are created")
    storage_path: Path | None = option(
        None, "trial results and checkpoints on storage every node shares (needed with --address on more than "
              "one machine; default: inside the run folder)")
    address: str | None = option(None, "join a running Ray cluster: auto or HOST:PORT (default: start a local Ray "
                                       "instance)")
    dashboard_host: str = option("127.0.0.1", "interface the Ray dashboard listens on (0.0.0.0 exposes it: a "
                                              "warning is printed)")
    no_dashboard: bool = option(False, "start the local Ray without its dashboard: on a small machine its processes "
                                       "take CPU from the trials (the Optuna study and TensorBoard still show the "
                                       "search)")
    max_failures: int = option(2, "retries of a failing trial from its last checkpoint (-1: unlimited)")
    resume: Path | None = option(None, "continue an interrupted run (its other options come from RUN_DIR/run.json)",
                                 metavar="RUN_DIR")
    trust_run_folder: bool = option(
        False, "with --resume: skip checking that this user's searches wrote the Ray state Ray will unpickle "
               "(only for a folder from a source you trust; see README, Safe by default)")
    objectives: str | None = option(
        None, "a multi-objective search: the selection metric, then params, macs and/or latency_ms (per record, "
              "batch 1), e.g. val_micro_f1,params; pareto.csv holds the front and the winners come from it "
              "(default: --metric alone)", metavar="METRIC,COST[,COST]")
    max_params: int | None = option(
        None, "budget: a sampled model with more parameters is rejected before training (default: none)",
        metavar="N")
    max_latency_ms: float | None = option(
        None, "budget: a sampled model slower than T ms per record (batch 1, on the trial's device) is rejected "
              "before training (default: none)", metavar="T")
    warm_start: str | None = option(
        None, "first trials: the study's configurations that the space can express (study), or the rows of a "
              "best_configs.csv (default: none)", metavar="study|FILE.csv")

    def __post_init__(self) -> None:
        for name in ("data", "labels", "results_dir", "storage_path", "resume"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value).expanduser())
        if self.space not in _known_spaces():
            raise OptionError(f"--space {values.quote(self.space)} is unknown; choose one of "
                              f"{', '.join(_known_spaces())}")
        _positive("--n-records", self.n_records, minimum=10)
        _positive("--num-samples", self.num_samples)
        _positive("--max-epochs", self.max_epochs)
        _positive("--grace-period", self.grace_period)
        _positive("--reduction-factor", self.reduction_factor, minimum=2)
        _positive("--max-concurrent", self.max_concurrent)
        _positive("--top-k", self.top_k)
        _positive("--ensemble-candidates", self.ensemble_candidates)
        _positive("--max-params", self.max_params)
        for flag in ("--cpus-per-trial", "--memory-per-trial", "--gpus-per-trial", "--max-latency-ms", "--time-budget"):
            _finite(flag, getattr(self, flag[2:].replace("-", "_")))
        if self.time_budget is not None and not self.time_budget > 0:
            raise OptionError(f"--time-budget must be > 0 (minutes), got {self.time_budget}")
        if self.max_latency_ms is not None and not self.max_latency_ms > 0:
            raise OptionError(f"--max-latency-ms must be > 0, got {self.max_latency_ms}")
        if self.max_epochs is not None and self.grace_period is not None and self.grace_period > self.max_epochs:
            raise OptionError(f"--grace-period {self.grace_period} is larger than --max-epochs {self.max_epochs}")
        _choice("--scheduler", self.scheduler, SCHEDULERS)
        _choice("--sampler", self.sampler, SAMPLERS)
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
        try:  # the split's and the sampler's NumPy generators take no larger seed
            values.seed(self.seed, "--seed")
        except ValueError as err:
            raise OptionError(str(err)) from None
        if self.labels is not None and self.data is None:
            raise OptionError("--labels needs --data (the records the labels belong to)")
        _check_host("--dashboard-host", self.dashboard_host)
        if self.no_dashboard and self.dashboard_host != "127.0.0.1":
            raise OptionError(f"--dashboard-host {self.dashboard_host} has no dashboard to place with --no-dashboard")
        if self.address is not None:
            _check_address(self.address)
            if self.no_dashboard:
                raise OptionError(f"--no-dashboard only applies to the local Ray a search starts, not to the cluster "
                                  f"at --address {self.address} (its dashboard is its own)")
        self._check_conventions()  # last: it reads the data's kind, the others are checks of plain values

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
        if self.fs is not None and self.fs > values.RATE_HZ[1]:
            raise OptionError(f"--fs must be an integer from 50 to {values.RATE_HZ[1]:g} Hz, got {self.fs}")
        if self.objectives is not None:
            self._check_objectives()
        if self.metric is None:
            self.metric = self.convention()["metric"]
        _choice("--metric", self.metric, METRICS)
        if self.metric == "val_challenge_score" and not str(self.task).startswith("cinc2021"):
            raise OptionError("--metric val_challenge_score needs --task cinc2021 (the Challenge's scored classes)")

    def _check_objectives(self) -> None:
        """--objectives: a selection metric first (it also becomes --metric), then distinct cost objectives."""
        names = [n.strip() for n in str(self.objectives).split(",")]
        if len(names) < 2:
            raise OptionError(f"--objectives {values.quote(self.objectives)}: give the selection metric and at least "
                              "one cost "
                              f"({', '.join(COST_OBJECTIVES)}), e.g. val_micro_f1,params")
        if names[0] not in METRICS:
            raise OptionError(f"--objectives {values.quote(self.objectives)}: the first must be a selection metric "
                              f"({', '.join(METRICS)}), got {values.quote(names[0])}")
        for name in names[1:]:
            if name not in COST_OBJECTIVES:
                raise OptionError(f"--objectives {values.quote(self.objectives)}: {values.quote(name)} is not a cost; "
                                  "choose from "
                                  f"{', '.join(COST_OBJECTIVES)}")
        if len(set(names)) != len(names):
            raise OptionError(f"--objectives {values.quote(self.objectives)} names an objective twice")
        if self.metric is not None and self.metric != names[0]:
            raise OptionError(f"--metric {self.metric} differs from the first of --objectives {self.objectives}")
        self.objectives = ",".join(names)
        self.metric = names[0]

    @property
    def objective_columns(self) -> list[tuple[str, str]]:
        """(reported column, mode) per objective: the trial's best metric so far, then the costs (minimised);
        just the first without --objectives."""
        if self.objectives is None:
            return [(self.trial_metric, self.metric_mode)]
        costs = self.objectives.split(",")[1:]
        return [(self.trial_metric, self.metric_mode), *((COST_OBJECTIVES[c], "min") for c in costs)]

    def convention(self) -> dict[str, str | None]:
        """The task, split and selection metric this search follows (`ecg.data.tasks`); a refusal as OptionError.
        A --data path that does not exist gets the plain convention here; `search.environment.check` refuses it."""
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

    def resolved(self, gpus_available: float) -> ResolvedOptions:
        """These options with every `None` default filled for hardware with `gpus_available` GPUs."""
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
        values.update(fs=fs)
        return ResolvedOptions(**{**self._fields(), **values}, gpu=gpu, length=fs * base.length // base.fs)

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(SearchOptions)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SearchOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(kw_only=True)
class ResolvedOptions(SearchOptions):
    """A search's options once the hardware has decided the defaults (`SearchOptions.resolved`): every size is
    set, and `gpu` and `length` exist. run.json records these (`to_dict`); `--resume` reads them back."""

    gpu: bool = field(repr=False)  # whether the defaults came from the GPU set
    length: int = field(repr=False)  # samples per record: 10 s at `fs`

    def space_context(self, fs: int, length: int) -> Any:
        """The `spaces.SpaceContext` of this search for records of `length` samples at `fs` Hz."""
        from spaces import SpaceContext  # imported late, as in _known_spaces

        return SpaceContext(gpu=self.gpu, length=length, max_epochs=self.max_epochs, seed=self.seed,
                            metric=self.metric, fs=fs)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ResolvedOptions":
        """Options a run recorded (run.json `args`); a record without `gpu`/`length` gets them from its values."""
        values = dict(values)
        values.setdefault("gpu", bool(values.get("gpus_per_trial")))
        if values.get("length") is None and values.get("fs"):
            values["length"] = int(values["fs"]) * 10
        return super().from_dict(values)  # type: ignore[return-value]


def _positive(flag: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and (not isinstance(value, int) or value < minimum):
        raise OptionError(f"{flag} must be an integer >= {minimum}, got {value}")


def _finite(flag: str, value: float | None) -> None:
    """A float option must be a finite number (argparse reads "inf" and "nan" as floats)."""
    if value is not None:
        try:
            values.to_float(value)
        except ValueError as err:
            raise OptionError(f"{flag} {err}") from None


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(f"{flag} {values.quote(value)} is unknown; choose one of {', '.join(choices)}")


def _check_address(address: str) -> None:
    """--address: "auto" or HOST:PORT (an IPv6 host in brackets), checked before anything tries to reach it."""
    import re

    host, _, port = address.rpartition(":")
    if address != "auto" and not (re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 65536
                                  and host.isprintable() and re.fullmatch(r"[^\s\[\]]+|\[[0-9a-fA-F:.]+\]", host)):
        raise OptionError(f"--address {values.quote(address)} is not auto or HOST:PORT (a port from 1 to 65535)")


def _check_host(flag: str, host: str) -> None:
    """An interface address to listen on: an IPv4/IPv6 literal or "localhost" (refused before Ray starts)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise OptionError(f"{flag} {values.quote(host)} is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 "
                              "for every interface)") from None
