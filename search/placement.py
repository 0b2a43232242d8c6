"""`PlacementWatchdog`: a Ray Tune callback that ends a search whose trials wait for resources no live node has.

Apart from `search.cluster` so that starting Ray does not import Ray Tune: the start imports Ray Tune while
Ray's processes come up (`search.runner`).
"""
from __future__ import annotations

import os
import time
from typing import Any

from ray.tune import Callback

from search.nodes import describe_need, fits_a_node

# A trial that waits this long with nothing running, for resources no live node has, ends the search.
PLACEMENT_TIMEOUT_ENV = "ECG_SEARCH_PLACEMENT_TIMEOUT_S"
PLACEMENT_TIMEOUT_S = 120.0


class TrialUnplaceable(RuntimeError):
    """Trials wait for resources that no live node has (e.g. the only GPU node left); the message says which."""


class PlacementWatchdog(Callback):
    """Ends the search when trials have waited `timeout_s` with nothing running for resources that no live node
    has, instead of waiting forever (Ray Tune only warns, every minute). Trials that wait only because the
    nodes are busy (another job) are left waiting: the check asks whether any node could ever hold one."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s if timeout_s is not None else float(
            os.environ.get(PLACEMENT_TIMEOUT_ENV, PLACEMENT_TIMEOUT_S))
        self._waiting_since: float | None = None

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        pending = [t for t in trials if t.status == "PENDING"]
        if not pending or any(t.status == "RUNNING" for t in trials):
            self._waiting_since = None
            return
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
            return
        if now - self._waiting_since < self.timeout_s:
            return
        need = {key: float(value) for key, value in pending[0].placement_group_factory.required_resources.items()}
        if fits_a_node(need):
            self._waiting_since = now  # the nodes are busy, not too small: look again later
            return
        raise TrialUnplaceable(f"trial {pending[0].trial_id} has waited {now - self._waiting_since:.0f} s for "
                               f"{describe_need(need)}, which no live node of the cluster has (a node left?); "
                               f"stopping instead of waiting forever")

    def __getstate__(self) -> dict[str, Any]:  # pickled into tuner.pkl: keep no timer across a resume
        return {"timeout_s": self.timeout_s, "_waiting_since": None}
