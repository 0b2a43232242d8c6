"""run.json: what a run was (arguments, seed, versions, git commit, data fingerprint, hardware) and how it
went (status, times, trial counts). Written at the start, updated at the end; also what `--resume` reads."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from search.exports import write_json

RUN_FILE = "run.json"
PACKAGES = ("torch", "ray", "optuna", "numpy", "pandas", "scikit-learn", "scipy", "wfdb", "safetensors")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def new_run_dir(results_dir: Path, space: str) -> Path:
    """`results_dir/<space>-<YYYYmmdd-HHMMSS>`, with -2, -3, ... when that exists: a run never overwrites another."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{space}-{datetime.now():%Y%m%d-%H%M%S}"
    for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
        candidate = results_dir / f"{stem}{suffix}"
        try:
            candidate.mkdir()  # atomic: two runs started in the same second get different folders
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not find a free run folder name for {stem} in {results_dir}")


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


def read(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RUN_FILE).read_text())


def read_for_resume(run_dir: Path) -> dict[str, Any]:
    """run.json of a folder to resume, or an OptionError naming the folder and what is wrong (one line)."""
    from search.options import OptionError

    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise OptionError(f"--resume {run_dir}: no {RUN_FILE} there (not a run folder)")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OptionError(f"--resume {run_dir}: {path} is unreadable ({err}); the run cannot be resumed") from None
    missing = [key for key in ("status", "args", "data") if not isinstance(info, dict) or key not in info]
    if missing:
        raise OptionError(f"--resume {run_dir}: {path} lacks {', '.join(missing)} (not written by launch.py?)")
    return info


def write(run_dir: Path, info: dict[str, Any]) -> None:
    info = {**info, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(info, run_dir / RUN_FILE)
