"""Facts about the machine and the code a run records in run.json (`ecg.run_folder.RunRecord`): package
versions, the git commit, the hardware and the Ray cluster it ran on."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "ray", "optuna", "numpy", "pandas", "scikit-learn", "scipy", "wfdb", "safetensors")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit() -> dict[str, Any]:
    """HEAD of the project's repository and whether the working tree had changes (None outside git)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                                 timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"machine": platform.machine(), "platform": platform.platform(),
                            "cpus": os.cpu_count(), "cuda": torch.cuda.is_available(),
                            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    try:
        import ray

        if ray.is_initialized():
            info["ray_cluster_resources"] = {k: v for k, v in ray.cluster_resources().items()
                                             if k in ("CPU", "GPU", "memory")}
            info["ray_nodes"] = sum(1 for node in ray.nodes() if node.get("Alive"))
    except ImportError:
        pass
    return info
