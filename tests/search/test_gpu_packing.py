"""GPU packing proven on logical GPUs: Ray is told a CPU machine has GPUs (`ray start --num-gpus 2`, or
`ray.cluster_utils.Cluster` nodes with `num_gpus=1`), so its scheduling of fractional GPU shares runs here
exactly as on GPU machines; each trial is given GPU ids, finds no CUDA device, trains on the CPU and says so.

What is checked, from the run folder a user gets: trials.csv's `gpu_ids` (what ray.get_gpu_ids() gave each
trial) and `device`; from Ray's own trial times (when each trial was RUNNING, i.e. held its resources):
how many trials ran at once on each GPU, and that the shares held on any GPU never summed to more than 1
(the pooled-fractions bug reported in Ray's tracker would show up here as 0.5 + 0.5 + 0.5 on one id).

The test hook `ECG_SEARCH_FAULT=hold@1;n=N` holds each trial at the end of its first epoch until N trials
have got there, so the trials that fit at once do run at once, however long the machine takes to start their
workers. Slow: a few minutes here (several Ray worker starts on a 2-core machine).
"""
from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

# On a machine with a real GPU, CUDA works behind the first logical id, so trials there train on it: the
# real GPU's packing is measured by bench/gpu_check.sh instead.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(torch.cuda.is_available(), reason="logical GPUs are for machines without CUDA")]
ROOT = Path(__file__).resolve().parents[2]
CPU_FALLBACK = "sees no CUDA device: training on the CPU"  # the line search.trainable writes to the trial's log


def placements(run_dir: Path, experiment: Path) -> pd.DataFrame:
    """One row per trial: trial_id, gpu_ids, device, node_id, and when it held its resources (Ray's RUNNING
    start and its last result)."""
    from ray.tune import ExperimentAnalysis

    trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str, "gpu_ids": str})
    epochs = pd.read_csv(run_dir / "epochs.csv", dtype={"trial_id": str})
    nodes = epochs.groupby("trial_id")["node_id"].last()
    times = {t.trial_id: (t.run_metadata.start_time, t.run_metadata.last_result_time)
             for t in ExperimentAnalysis(str(experiment.resolve())).trials}
    trials["node_id"] = trials["trial_id"].map(nodes)
    trials["start"] = trials["trial_id"].map(lambda t: times[t][0])
    trials["end"] = trials["trial_id"].map(lambda t: times[t][1])
    return trials[["trial_id", "gpu_ids", "device", "node_id", "start", "end"]]


def cpu_fallback_lines(folders: Iterable[Path]) -> int:
    """How many times trials wrote CPU_FALLBACK to their worker logs under `folders`."""
    logs = {log for folder in folders for log in folder.rglob("worker-*.err")}
    return sum(log.read_text(errors="replace").count(CPU_FALLBACK) for log in logs)


def peak_use(trials: pd.DataFrame, share: float) -> tuple[int, dict[tuple[str, str], int], float]:
    """(most trials running at once, the most at once on each (node, GPU id), the largest sum of shares held on
    one GPU at any moment), sweeping over every trial's start."""
    most, per_gpu, worst = 0, {}, 0.0
    for start in trials["start"]:
        running = trials[(trials["start"] <= start) & (trials["end"] > start)]
        most = max(most, len(running))
        for key, group in running.groupby(["node_id", "gpu_ids"]):
            per_gpu[key] = max(per_gpu.get(key, 0), len(group))
            worst = max(worst, share * len(group))
    return most, per_gpu, worst


def test_launch_on_a_ray_start_cluster_with_two_logical_gpus_packs_two_trials_per_gpu(tmp_path, ray_head) -> None:
    """The README's cluster path: `ray start --head --num-cpus 4 --num-gpus 2`, then
    `launch.py --address ... --gpus-per-trial 0.5`: 4 trials at once, two on each GPU id, each on the CPU."""
    temp_dir = Path(f"/tmp/ecg-gpk-{secrets.token_hex(3)}")  # short: Ray's socket paths must fit in 107 bytes
    with ray_head(temp_dir, num_cpus=4, num_gpus=2) as (address, env):
        results = tmp_path / "results"
        proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--address", address, "--gpus-per-trial", "0.5",
                               "--space", "ecgnet", "--n-records", "120", "--fs", "100", "--num-samples", "4",
                               "--max-epochs", "1", "--grace-period", "1", "--top-k", "1", "--results-dir", str(results)],
                              cwd=ROOT, env={**env, "ECG_SEARCH_FAULT": "hold@1;n=4"}, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_dir = next(results.iterdir())
        trials = placements(run_dir, run_dir / "tune")
        fallbacks = cpu_fallback_lines([temp_dir])
    assert len(trials) == 4 and (trials["device"] == "cpu").all()
    assert sorted(trials["gpu_ids"]) == ["0", "0", "1", "1"]  # two trials per GPU id
    most, per_gpu, worst = peak_use(trials, 0.5)
    assert most == 4, trials  # all four at once
    assert sorted(per_gpu.values()) == [2, 2] and worst <= 1.0
    assert fallbacks == 4  # each trial's log says it got a GPU id and trained on the CPU
    assert "the trials used GPUs but this machine has none" in proc.stdout + proc.stderr  # winners: CPU


def two_nodes_with_a_gpu_each(cluster_class: type) -> Any:
    """A `ray.cluster_utils.Cluster` of two nodes with 4 CPUs and 1 logical GPU each. Each node gets Ray's
    fixed 30 s to register its raylet, which a loaded machine can miss: start again, up to three times."""
    for attempt in range(3):
        cluster = cluster_class()
        try:
            # No dashboard: one process fewer to start in the raylet's window (the test reads no dashboard).
            cluster.add_node(num_cpus=4, num_gpus=1, include_dashboard=False)
            cluster.add_node(num_cpus=4, num_gpus=1)
            cluster.wait_for_nodes()
            return cluster
        except Exception:  # noqa: BLE001 - "The current node timed out during startup"
            cluster.shutdown()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_two_node_cluster_with_one_logical_gpu_per_node_packs_quarters_and_whole_gpus(tmp_path, monkeypatch) -> None:
    """`ray.cluster_utils.Cluster`, two nodes with one logical GPU each: at 0.25 per trial four trials share
    each node's GPU; at 1 per trial one trial per GPU, one on each node; never more than 1 GPU's worth on any
    GPU; every trial trains on the CPU and its log says so. Also the multi-node test: trials run on both
    nodes, their results on the shared storage path, the exports in the run folder."""
    import ray
    from ray.cluster_utils import Cluster

    from ecg.run_folder import RunFolder
    from search import SearchOptions, run

    cluster = two_nodes_with_a_gpu_each(Cluster)
    found = {}
    try:
        node_ids = {node.node_id for node in cluster.list_all_nodes()}
        # At 0.25 eight trials fit at once (four per GPU), at 1 two (one per GPU).
        for share, trials, at_once in ((0.25, 8, 8), (1.0, 2, 2)):
            monkeypatch.setenv("ECG_SEARCH_FAULT", f"hold@1;n={at_once}")
            options = SearchOptions(space="ecgnet", n_records=120, fs=100, num_samples=trials, max_epochs=1,
                                    grace_period=1, scheduler="fifo", top_k=1, gpus_per_trial=share,
                                    results_dir=tmp_path / f"results-{share:g}", storage_path=tmp_path / "shared",
                                    address=cluster.address)
            run_dir = run(options)
            assert (tmp_path / "shared" / run_dir.name / "tune").is_dir()  # Ray's results on the shared path
            found[share] = placements(run_dir, RunFolder(run_dir).experiment_dir(options.storage_path))
            assert set(pd.read_csv(run_dir / "trials.csv")["status"]) == {"TERMINATED"}
        # Each node's own session folder (not /tmp/ray/session_latest, which another Ray may have moved).
        fallbacks = cpu_fallback_lines({Path(node.get_session_dir_path()) for node in cluster.list_all_nodes()})
    finally:
        ray.shutdown()
        cluster.shutdown()

    quarters, wholes = found[0.25], found[1.0]
    for trials in (quarters, wholes):
        assert (trials["device"] == "cpu").all() and set(trials["gpu_ids"]) == {"0"}  # each node's only GPU
    assert set(quarters["node_id"]) == node_ids and set(wholes["node_id"]) == node_ids
    most, per_gpu, worst = peak_use(quarters, 0.25)
    assert most == 8 and sorted(per_gpu.values()) == [4, 4] and worst <= 1.0  # four per GPU, never over 1
    most, per_gpu, worst = peak_use(wholes, 1.0)
    assert most == 2 and max(per_gpu.values()) == 1 and worst <= 1.0  # one trial per GPU, both at once
    assert fallbacks == 8 + 2
