"""What the live nodes of the Ray cluster (or the local instance) hold, and whether a trial's resources fit one."""
from __future__ import annotations

import ray


def live_nodes() -> list[dict[str, float]]:
    """The resources of each node Ray knows to be alive."""
    return [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]


def fits_a_node(need: dict[str, float], nodes: list[dict[str, float]] | None = None) -> bool:
    """Whether some live node has every resource in `need` (a trial is placed on one node)."""
    nodes = live_nodes() if nodes is None else nodes
    return any(all(node.get(key, 0.0) >= amount for key, amount in need.items() if amount) for node in nodes)


def describe_need(need: dict[str, float]) -> str:
    """`need` as a message says it: "2 CPUs, 1 GPUs, 4 GiB memory"."""
    parts = [f"{need[key]:g} {key}s" for key in ("CPU", "GPU") if need.get(key)]
    if need.get("memory"):
        parts.append(f"{need['memory'] / 2**30:g} GiB memory")
    return ", ".join(parts) or "no resources"
