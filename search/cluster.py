"""Starting or joining Ray, and checking that the cluster can give what a trial asks for."""
from __future__ import annotations

import logging
import os

import ray

from search.options import OptionError, SearchOptions

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Whether `start` started Ray itself: `stop` shuts down only what it started, so a notebook, a benchmark or
# a caller already connected to a cluster keeps its Ray across several searches.
_started_here = False


def start(options: SearchOptions) -> str | None:
    """`ray.init` on a new local instance, or on the cluster at `--address`; returns the dashboard URL.

    The dashboard binds to 127.0.0.1 unless `--dashboard-host` says otherwise: it can run jobs on the
    cluster, so exposing it is warned about. Ray's token authentication is left as Ray configures it.
    """
    global _started_here
    if ray.is_initialized():
        return None
    # Workers inherit the driver's environment on a local instance; passing the test hook explicitly keeps
    # it working on a cluster started elsewhere too (see search.faults).
    env = {k: v for k, v in os.environ.items() if k.startswith("ECG_SEARCH_")}
    runtime_env = {"env_vars": env} if env else None
    if options.address is None:
        if options.dashboard_host not in LOOPBACK:
            log.warning("the Ray dashboard will listen on %s: anyone who can reach it can run code on this "
                        "machine; keep it on 127.0.0.1 and use an SSH tunnel unless this network is trusted",
                        options.dashboard_host)
        # address="local": without it Ray joins the newest instance already running on this machine (another
        # user's launch.py, say) instead of starting this search's own.
        context = ray.init(address="local", include_dashboard=True, dashboard_host=options.dashboard_host,
                           runtime_env=runtime_env, configure_logging=True, logging_level=logging.WARNING,
                           log_to_driver=True)
    else:
        context = ray.init(address=options.address, runtime_env=runtime_env, logging_level=logging.WARNING)
    _started_here = True
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url


def gpu_capacity() -> tuple[float, float]:
    """(total GPUs in the cluster, most GPUs on any one node), from the live nodes Ray knows."""
    per_node = [node.get("Resources", {}).get("GPU", 0.0) for node in ray.nodes() if node.get("Alive")]
    return float(sum(per_node)), float(max(per_node, default=0.0))


def check_capacity(options: SearchOptions) -> None:
    """A trial must fit on one node: refuse `--gpus-per-trial`/`--cpus-per-trial` larger than any node has."""
    _, gpus_on_largest = gpu_capacity()
    if options.gpus_per_trial and options.gpus_per_trial > gpus_on_largest:
        raise OptionError(f"--gpus-per-trial {options.gpus_per_trial:g} is more than any node of the cluster has "
                          f"({gpus_on_largest:g} GPUs)")
    cpus_on_largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if options.cpus_per_trial > cpus_on_largest:
        raise OptionError(f"--cpus-per-trial {options.cpus_per_trial:g} is more than any node of the cluster has "
                          f"({cpus_on_largest:g} CPUs)")


def stop() -> None:
    """Shut Ray down if `start` started it; leave a Ray instance the caller started alone."""
    global _started_here
    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False
