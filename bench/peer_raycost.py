"""What Ray's own processes cost this system inside the protocol's CPU share (bench_peer.py --ray-cost).

One launch: `launch.py --space gru` with its CPU defaults (plus any extra launch.py options of the variant),
alone, in a cgroup capped at the share one method gets in a protocol piece (CPUS / 5), for `window_s` seconds,
then Ctrl-C. Every second each process of the group is read from /proc (user + system CPU, and its command line,
which names what it is: Ray sets its workers' titles), so the window's CPU seconds are split into what trained
(the trial actors' worker processes) and what did not (the driver: launch.py's Ray Tune loop; Ray's GCS,
raylet, dashboard and its agents, monitors). `unattributed` is the cgroup's own count minus the sum over the
processes seen (processes that lived under a second, and the last second of those that ended).

A variant is a name and extra launch.py options (`default` has none); variants take turns, rotating each
repeat, so each is measured under the same conditions.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pandas as pd
from peer_startup import stop_launch

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
# What a process is, by a fragment of its command line (first match wins; Ray titles its workers "ray::...").
KINDS = (("launch.py", "driver"), ("gcs_server", "gcs"), ("raylet/raylet", "raylet"),
         ("dashboard/agent.py", "dashboard_agent"), ("DashboardAgent", "dashboard_agent"),
         ("dashboard/dashboard.py", "dashboard"), ("ray-dashboard", "dashboard"),
         ("runtime_env/agent", "runtime_env_agent"), ("RuntimeEnvAgent", "runtime_env_agent"),
         ("log_monitor", "log_monitor"), ("autoscaler", "autoscaler_monitor"), ("client.server", "client_server"),
         ("ray::ImplicitFunc", "trial_workers"), ("ray::_Inner", "trial_workers"), ("train_trial", "trial_workers"),
         ("ray::IDLE", "idle_workers"), ("default_worker.py", "idle_workers"), ("setup_worker.py", "idle_workers"),
         ("dashboard", "dashboard"))
TRAINING = ("trial_workers",)


def kind_of(cmdline: str) -> str:
    """The kind of process a command line names (KINDS), else "other"."""
    return next((kind for fragment, kind in KINDS if fragment in cmdline), "other")


def split_env(extra: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """A variant's leading NAME=VALUE words (environment variables, e.g. Ray's RAY_<setting>) and its launch.py
    options."""
    env: dict[str, str] = {}
    words = list(extra)
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def _cpu_and_cmdline(pid: str) -> tuple[float, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "(comm)": state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / TICKS, cmdline


def launch_once(extra: Sequence[str], window_s: float, cpus: float, shares_cls: type) -> dict[str, float]:
    """One capped launch of launch.py for `window_s` seconds: CPU seconds per kind of process, the cgroup's
    total, the trial epochs reported and the 1-minute load average before the launch."""
    work = Path(tempfile.mkdtemp(prefix="peer-raycost-"))
    shares = shares_cls(["this_system"], cpus=cpus)
    load = os.getloadavg()[0]
    seen: dict[str, tuple[float, str]] = {}  # pid -> (its CPU seconds when last read, kind)
    try:
        env, options = split_env(extra)
        proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "--space", "gru", "--num-samples",
                                 "100000", "--results-dir", str(work), *options], cwd=ROOT,
                                env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        shares.join("this_system", proc.pid)
        started = time.time()
        while time.time() - started < window_s and proc.poll() is None:
            group = shares.groups[0] / "this_system" / "cgroup.procs" if shares.groups else None
            pids = group.read_text().split() if group else [proc.pid]
            for pid in pids:
                read = _cpu_and_cmdline(pid)
                if read is not None:
                    # A worker is idle until it runs a trial, and keeps its trial's kind once idle again.
                    settled = pid in seen and seen[pid][1] not in ("other", "idle_workers")
                    kind = seen[pid][1] if settled else kind_of(read[1])
                    seen[pid] = (read[0], kind)
            time.sleep(1.0)
        total = shares.cpu_s("this_system")
        stop_launch(proc)
        row: dict[str, float] = {"window_s": window_s, "cap_cpus": cpus, "load_avg": round(load, 2),
                                 "cgroup_cpu_s": round(total, 1)}
        for cpu, kind in seen.values():
            row[kind] = row.get(kind, 0.0) + cpu
        row["unattributed"] = total - sum(cpu for cpu, _ in seen.values())
        row["epochs"] = sum(1 for path in work.glob("*/tune/*/result.json")
                            for line in path.read_text().splitlines() if line.strip())
        return {key: round(value, 2) if isinstance(value, float) else value for key, value in row.items()}
    finally:
        shares.close()
        shutil.rmtree(work, ignore_errors=True)


def measure(variants: dict[str, list[str]], repeats: int, window_s: float, cpus: float,
            shares_cls: type) -> pd.DataFrame:
    """`repeats` capped launches of each variant, in turns that rotate; one row per launch."""
    names = list(variants)
    rows = []
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            time.sleep(3.0)  # the previous Ray's processes gone
            row = {"variant": name, "repeat": repeat, **launch_once(variants[name], window_s, cpus, shares_cls)}
            rows.append(row)
            print(f"{name} repeat {repeat}: {row}", flush=True)
    frame = pd.DataFrame(rows).fillna(0.0)
    kinds = [c for c in frame.columns if c not in ("variant", "repeat", "window_s", "cap_cpus", "load_avg",
                                                    "cgroup_cpu_s", "epochs")]
    frame["not_training_cpu_s"] = frame[[k for k in kinds if k not in TRAINING]].sum(axis=1).round(2)
    return frame
