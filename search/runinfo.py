"""run.json: what a run was (arguments, seed, versions, git commit, data fingerprint, hardware) and how it
went (status, times, trial counts), as one `RunRecord`. Written once the search is about to start, updated
at the end; also what `--resume` reads."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
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


@dataclass
class RunRecord:
    """Everything run.json holds. Fields left None are not written; keys this version does not know (from
    another version) are kept in `other` and written back unchanged."""

    status: str  # running | interrupted | failed | complete
    space: str
    seed: int
    args: dict[str, Any]  # the resolved SearchOptions (SearchOptions.to_dict)
    data: dict[str, Any]  # source, spec, convention, fingerprint, sizes, skipped records
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    versions: dict[str, str] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    experiment_path: str | None = None
    study: str | None = None  # the Optuna study's storage URL
    hardware: dict[str, Any] | None = None
    dashboard: str | None = None
    ray_start_s: float | None = None
    fit_started: float | None = None  # time.time() when Tuner.fit began (the benches measure trial start from it)
    fit_time_s: float | None = None
    search_time_s: float | None = None
    wall_time_s: float | None = None
    trials: dict[str, int] | None = None  # count by Ray status
    over_budget: int | None = None  # trials rejected before training (--max-params, --max-latency-ms)
    study_trials: int | None = None
    search_constants: dict[str, Any] | None = None
    orphaned_study_trials_failed: int | None = None
    winners: list[str] | None = None
    skipped_winners: list[dict[str, str]] | None = None
    chosen_model: dict[str, Any] | None = None
    evaluation_device: str | None = None
    failure: str | None = None  # why a failed run stopped
    unwritten: dict[str, str] | None = None  # exports that could not be written (a full disk), with the reason
    resumes: list[dict[str, Any]] = field(default_factory=list)
    updated: str | None = None
    other: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunRecord":
        known = {f.name for f in fields(cls)} - {"other"}
        args = values.get("args") or {}
        values = {"space": args.get("space"), "seed": args.get("seed"), **values}
        return cls(**{k: v for k, v in values.items() if k in known},
                   other={k: v for k, v in values.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        other = values.pop("other")
        # `resumes` only once there is one, as before RunRecord
        return {**{k: v for k, v in values.items() if v is not None and (k != "resumes" or v)}, **other}


def read(run_dir: Path) -> RunRecord:
    return RunRecord.from_dict(json.loads((run_dir / RUN_FILE).read_text()))


def read_for_resume(run_dir: Path) -> RunRecord:
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
    return RunRecord.from_dict(info)


def write(run_dir: Path, record: RunRecord) -> None:
    record.updated = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(record.to_dict(), run_dir / RUN_FILE)
