"""Starting or joining Ray, and checking that the cluster can give what a trial asks for.

Safe by default on one machine: a local search's Ray (GCS, raylet, workers, dashboard and its agents, the
metrics port) listens on loopback only, requires Ray's auth token (Ray 2.60's default for a local instance,
unless RAY_AUTH_MODE=disabled), and the token file is user-only (0600). `--address` joins a cluster that its operator configured;
`--dashboard-host` moves only the dashboard (with a warning). docs/reliability.md, "Safe by default".
"""
from __future__ import annotations

import logging
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import ray
from ray._private import ray_constants

from search.address import probe, restore_auth_mode, token_file
from search.nodes import describe_need, fits_a_node, live_nodes
from search.options import OptionError, SearchOptions

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Ray's prestart for the first driver starts a worker per CPU that belongs to no job; a trial's actor never
# runs in one (Ray starts a worker of the job for it and kills the idle prestarted ones), so on a small
# machine they only took CPU from the start (bench/results/peer/startup.md).
WORKER_STARTUP = {"prestart_worker_first_driver": False}
T = TypeVar("T")
# Whether `start` started Ray itself: `stop` shuts down only what it started, so a notebook, a benchmark or
# a caller already connected to a cluster keeps its Ray across several searches.
_started_here = False
_saved_cluster_mode: tuple[bool, str | None] | None = None  # (Ray's flag, its env var) before start


def start(options: SearchOptions, job_name: str | None = None) -> str | None:
    """`ray.init` on a new local instance, or on the cluster at `--address`; returns the dashboard URL. The job is
    named `job_name` (the run folder's) in the dashboard's Jobs page, else "<space> search" (a search that joins a
    cluster connects before its run folder is named; `ray job submit` names its job by its own metadata).

    The dashboard binds to 127.0.0.1 unless `--dashboard-host` says otherwise: it can run jobs on the
    cluster, so exposing it is warned about. `--address` is probed first (`probe`): an unreachable cluster or
    one refusing the token is one OptionError naming the address and the likely cause.
    """
    global _started_here
    if ray.is_initialized():
        return None
    # Workers inherit the driver's environment on a local instance; passing the test hook explicitly keeps
    # it working on a cluster started elsewhere too (see search.faults).
    env = {k: v for k, v in os.environ.items() if k.startswith("ECG_SEARCH_")}
    runtime_env = {"env_vars": env} if env else None
    job_config = ray.job_config.JobConfig(metadata={"job_name": job_name or f"{options.space} search"})
    if options.address is None:
        if options.dashboard_host not in LOOPBACK:
            log.warning("the Ray dashboard will listen on %s: anyone who can reach it can run code on this "
                        "machine; keep it on 127.0.0.1 and use an SSH tunnel unless this network is trusted",
                        options.dashboard_host)
        _listen_on_loopback_only()
        _secure_token_file(create=True)  # Ray 2.60 turns token auth on for a local instance unless told not to
        # address="local": without it Ray joins the newest instance already running on this machine (another
        # user's launch.py, say) instead of starting this search's own.
        context = ray.init(address="local", include_dashboard=not options.no_dashboard,
                           dashboard_host=options.dashboard_host,
                           runtime_env=runtime_env, job_config=job_config, configure_logging=True,
                           logging_level=logging.WARNING,
                           log_to_driver=options.verbose,  # trials' own output: in their worker logs; -v here too
                           _system_config=WORKER_STARTUP)
        _secure_token_file()
    else:
        address = probe(options.address)
        context = ray.init(address=address, runtime_env=runtime_env, job_config=job_config,
                           logging_level=logging.WARNING, log_to_driver=options.verbose)
    _started_here = True
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url or None  # "" without a dashboard


def start_while(options: SearchOptions, work: Callable[[], T], job_name: str | None = None) -> tuple[T, str | None, float]:
    """`start(options)` while `work()` runs in a background thread (the driver's own preparation: the split,
    the features, the other input rates); `work`'s result, the dashboard URL and the seconds Ray's start took.

    Ray starts in the calling thread: its driver state belongs to the thread that called `ray.init` (after an
    init in another thread, `ray.cluster_resources()` from the main thread never returns). Whichever of the
    two raises, the other is waited for first, so a caller that cleans up finds neither still running; `work`'s
    error wins over Ray's (a bad split is the user's to fix first).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare") as pool:
        prepared = pool.submit(work)
        started = time.time()
        try:
            dashboard = start(options, job_name=job_name)
        except BaseException:
            if prepared.exception() is not None:  # waits for it
                raise prepared.exception() from None
            raise
        seconds = time.time() - started
        return prepared.result(), dashboard, seconds


def _listen_on_loopback_only() -> None:
    """Make the local instance's node address 127.0.0.1: Ray's gRPC servers (GCS, raylet, core workers) then
    bind to loopback instead of every interface, and the dashboard agent, runtime-env agent and metrics
    exporter follow the node address. Ray does this itself only on macOS and Windows, behind the flag below
    (ray._private.services.get_node_ip_address); `stop` restores it for a later `--address` in this process."""
    global _saved_cluster_mode
    if _saved_cluster_mode is None:
        _saved_cluster_mode = (ray_constants.ENABLE_RAY_CLUSTER,
                               os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR))
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # processes that import Ray afresh agree


def _secure_token_file(create: bool = False) -> None:
    """Ray writes its token file with the umask's mode (0644 here): anyone on the machine could read it and
    use the cluster. Make it user-only; with `create`, write a new one user-only from the start, where Ray
    would generate it (token auth not disabled, no token given in the environment)."""
    path = token_file()
    wanted = os.environ.get("RAY_AUTH_MODE", "token").lower() == "token" and not os.environ.get("RAY_AUTH_TOKEN")
    if create and wanted and not path.exists():
        from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(generate_new_authentication_token())
        except FileExistsError:  # another search wrote it a moment ago
            pass
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO) and path.stat().st_uid == os.getuid():
            path.chmod(0o600)
    except FileNotFoundError:
        pass


def gpu_capacity() -> tuple[float, float]:
    """(total GPUs in the cluster, most GPUs on any one node), from the live nodes Ray knows."""
    per_node = [resources.get("GPU", 0.0) for resources in live_nodes()]
    return float(sum(per_node)), float(max(per_node, default=0.0))


def check_capacity(options: SearchOptions) -> None:
    """A trial must fit on one node: refuse `--gpus-per-trial`, `--cpus-per-trial` or `--memory-per-trial`
    larger than any node has (one OptionError, before any trial is created)."""
    where = "this machine" if options.address is None else "any node of the cluster"
    nodes = live_nodes()
    largest = {key: max((node.get(key, 0.0) for node in nodes), default=0.0) for key in ("GPU", "CPU", "memory")}
    if options.gpus_per_trial and options.gpus_per_trial > largest["GPU"]:
        raise OptionError(f"--gpus-per-trial {options.gpus_per_trial:g} is more than {where} has "
                          f"({largest['GPU']:g} GPUs)")
    if options.cpus_per_trial > largest["CPU"]:
        raise OptionError(f"--cpus-per-trial {options.cpus_per_trial:g} is more than {where} has "
                          f"({largest['CPU']:g} CPUs)")
    if options.memory_per_trial and options.memory_per_trial * 2**30 > largest["memory"]:
        raise OptionError(f"--memory-per-trial {options.memory_per_trial:g} is more than {where} gives Ray trials "
                          f"({largest['memory'] / 2**30:.1f} GiB)")
    need = {"CPU": options.cpus_per_trial, "GPU": options.gpus_per_trial or 0.0,
            "memory": (options.memory_per_trial or 0.0) * 2**30}
    if not fits_a_node(need, nodes):
        raise OptionError(f"no single node has {describe_need(need)} at once, which each trial asks for")


def __getattr__(name: str) -> Any:
    """`search.cluster.PlacementWatchdog`, where runs made before it moved to `search.placement` pickled it
    into their tuner.pkl: a resume finds it here."""
    if name == "PlacementWatchdog":
        from search.placement import PlacementWatchdog

        return PlacementWatchdog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def stop() -> None:
    """Shut Ray down if `start` started it; leave a Ray instance the caller started alone."""
    global _started_here, _saved_cluster_mode
    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False
    restore_auth_mode()  # token mode turned on to join a cluster (search.address) ends with the search
    if _saved_cluster_mode is not None:
        ray_constants.ENABLE_RAY_CLUSTER, env_value = _saved_cluster_mode
        if env_value is None:
            os.environ.pop(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, None)
        else:
            os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = env_value
        _saved_cluster_mode = None
