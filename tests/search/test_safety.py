"""Safe by default (issue 12, items 5, 6, 8, 9, 10): a local search listens on loopback only, an unreachable or
token-refusing cluster is one line within 30 s, `--resume` unpickles nothing this user's searches did not
write, and a failed or pointless resume changes nothing. README "Safe by default", docs/reliability.md.

The session's shared search (`finished_run`, tests/search/conftest.py: a local Ray as a user starts it) is read
here: the sockets its Ray processes listened on while it ran, and the resume tests work on copies of its folder.
Every command runs in the session's own HOME (Ray's token file) and XDG_CONFIG_HOME (the digest key), so nothing
of the user's is read or changed.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import socket
import time
from pathlib import Path

import pytest

from search import integrity
from tests.search.conftest import LOOPBACK, answers


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its bytes: what "nothing was changed" compares."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("launch.py: error: "), stderr[-2000:]
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def home(user_env) -> Path:
    return Path(user_env["HOME"])


@pytest.fixture(scope="module")
def env(cli) -> dict[str, str]:
    return cli.env()


@pytest.mark.slow
def test_10_a_local_search_listens_on_loopback_only(finished_run) -> None:
    sockets = finished_run.sockets
    names = {name for name, _, _ in sockets}
    # GCS, raylet, the dashboard and its agents, and the trial workers were all seen while the search ran.
    assert {"gcs_server", "raylet"} <= names and any("DashboardAgent" in n for n in names), names
    assert any(n.startswith("ray::") and "Agent" not in n for n in names), names  # a trial worker
    exposed = {s for s in sockets if s[1] not in LOOPBACK}
    assert not exposed, f"listening beyond loopback: {sorted(exposed)}"


@pytest.mark.slow
def test_10_nothing_answers_from_outside_and_the_token_file_is_user_only(finished_run, home) -> None:
    run_dir, sockets, answered, ip = (finished_run.run_dir, finished_run.sockets, finished_run.answered,
                                      finished_run.outside_ip)
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address to knock from")
    assert sockets and not answered, f"answered at {ip}: {sorted(answered)}"
    with socket.socket() as control:  # the knock does find a port that listens on every interface
        control.bind(("0.0.0.0", 0))
        control.listen()
        assert answers(ip, control.getsockname()[1])
    token = home / ".ray" / "auth_token"
    assert token.exists() and (token.stat().st_mode & 0o777) == 0o600
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_9_a_run_records_a_keyed_digest_of_every_state_file_ray_unpickles(finished_run, home, monkeypatch) -> None:
    run_dir = finished_run.run_dir
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    key = home / ".config" / "ecg-autosearch" / integrity.KEY_NAME
    assert (key.stat().st_mode & 0o777) == 0o600 and (key.parent.stat().st_mode & 0o777) == 0o700
    recorded = json.loads((run_dir / integrity.RECORD_FILE).read_text())["files"]
    state = dict(integrity.state_files(run_dir / "tune"))
    names = {Path(relative).name.split("-")[0] for relative in state}
    assert {"tuner.pkl", "experiment_state", "searcher", "search_gen_state"} <= names, names
    assert set(state) <= set(recorded)
    integrity.verify(run_dir, run_dir / "tune")  # every file Ray would unpickle verifies


@pytest.mark.slow
def test_8_resuming_a_complete_run_says_so_and_changes_nothing(finished_run, cli, env) -> None:
    run_dir = finished_run.run_dir
    before = snapshot(run_dir)
    started = time.time()
    proc = cli.launch("--resume", str(run_dir), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{run_dir} is already complete" in proc.stdout and "nothing to resume" in proc.stdout
    assert "Ray dashboard" not in proc.stdout and "Test results" not in proc.stdout  # no Ray, no evaluation
    assert snapshot(run_dir) == before
    print(f"\nresume of a complete run: {time.time() - started:.1f} s")


def resumable_copy(run_dir: Path, tmp_path: Path, **changes) -> Path:
    """A copy of the finished run that claims to be interrupted (run.json is not a state file)."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    info = json.loads((copy / "run.json").read_text())
    info["status"] = "interrupted"
    for key, value in changes.items():
        info["args"][key] = value
    (copy / "run.json").write_text(json.dumps(info))
    return copy


class Payload:
    """Unpickling this creates a file: the proof that a resume ran code from the folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.slow
def test_9_resume_refuses_a_state_file_it_did_not_write_and_runs_none_of_it(finished_run, cli, env,
                                                                             tmp_path) -> None:
    copy = resumable_copy(finished_run.run_dir, tmp_path)
    marker = tmp_path / "code_ran"
    (copy / "tune" / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    before = snapshot(copy)
    proc = cli.launch("--resume", str(copy), env=env)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert f"{copy / 'tune' / 'tuner.pkl'} does not match the digest" in line and "--trust-run-folder" in line
    assert not marker.exists() and snapshot(copy) == before


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    ("no record", "state_digests.json is missing"),
    ("another user", "no digest key at"),
    ("corrupt run.json", "run.json is not valid JSON"),
    ("missing data file", "no such file or folder"),
])
def test_8_9_a_resume_that_cannot_go_on_is_one_line_and_changes_nothing(damage, message, finished_run, cli, env,
                                                                        tmp_path) -> None:
    copy = resumable_copy(finished_run.run_dir, tmp_path, **(
        {"data": str(tmp_path / "gone.npz")} if damage == "missing data file" else {}))
    if damage == "no record":
        (copy / integrity.RECORD_FILE).unlink()
    if damage == "another user":
        env = {**env, "XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}
    if damage == "corrupt run.json":
        (copy / "run.json").write_text('{"status": "interru')
    before = snapshot(copy)
    proc = cli.launch("--resume", str(copy), env=env)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert message in line and (str(copy) in line or "gone.npz" in line), line
    assert snapshot(copy) == before
    assert not (tmp_path / "elsewhere" / "ecg-autosearch").exists()  # a refused resume creates no key either


@pytest.mark.slow
@pytest.mark.parametrize("trust", [False, True])
def test_8_a_resume_that_fails_later_puts_the_status_back(trust, finished_run, home, tmp_path, monkeypatch) -> None:
    from search import cluster, runner, tuner
    from search.options import SearchOptions

    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    copy = resumable_copy(finished_run.run_dir, tmp_path)
    if trust:  # a folder without a record goes through with --trust-run-folder
        (copy / integrity.RECORD_FILE).unlink()

    def ray_fails(*args, **kwargs):
        raise RuntimeError("Ray could not restore the experiment")

    # No Ray: the failure comes where Tuner.restore would run, after run.json said "running".
    monkeypatch.setattr(cluster, "start", lambda options, job_name=None: None)
    monkeypatch.setattr(cluster, "check_capacity", lambda options: None)
    monkeypatch.setattr(tuner, "restore_tuner", ray_fails)
    with pytest.raises(RuntimeError, match="could not restore"):
        runner.run(SearchOptions(resume=copy, trust_run_folder=trust))
    info = json.loads((copy / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert info["resumes"][-1]["error"] == "RuntimeError: Ray could not restore the experiment"


@pytest.mark.slow
def test_6_an_unreachable_address_is_one_line_within_30_s(cli, env, tmp_path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.time()
    proc = cli.launch("--address", address, "--results-dir", str(tmp_path / "results"), env=env)
    took = time.time() - started
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert f"--address {address}: cannot reach a Ray cluster" in line and "Connection refused" in line
    assert "ray start --head" in line and "--address auto" in line
    assert took < 30 and not (tmp_path / "results").exists()
    print(f"\nunreachable --address refused in {took:.1f} s")


@pytest.mark.slow
def test_6_a_cluster_refusing_the_token_is_one_line_within_30_s(cli, ray_cluster, tmp_path) -> None:
    """The session's `ray start --head` cluster (token auth, its own token) asked with another token."""
    started = time.time()
    proc = cli.launch("--address", ray_cluster.address, "--results-dir", str(tmp_path / "results"),
                      env={**ray_cluster.env, "RAY_AUTH_TOKEN": "b" * 64})
    took = time.time() - started
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith(f"launch.py: error: --address {ray_cluster.address}: the cluster at ")
    assert "refused this machine's Ray auth token (from RAY_AUTH_TOKEN); set RAY_AUTH_TOKEN to the token" in line
    assert "ray get-auth-token" in line and "or run on the head node with --address auto" in line
    assert took < 30 and not (tmp_path / "results").exists()
    print(f"\ntoken refused in {took:.1f} s")


def test_5_a_trial_that_no_node_can_hold_ends_the_search_instead_of_waiting(monkeypatch) -> None:
    from search import nodes, placement

    class Trial:
        def __init__(self, status: str, cpus: float) -> None:
            self.status, self.trial_id = status, "t1"
            self.placement_group_factory = type("PGF", (), {"required_resources": {"CPU": cpus}})()

    live = [{"CPU": 2.0}]
    monkeypatch.setattr(nodes, "live_nodes", lambda: live)
    clock = [0.0]
    monkeypatch.setattr(placement.time, "monotonic", lambda: clock[0])
    watchdog = placement.PlacementWatchdog(timeout_s=60)
    busy = [Trial("RUNNING", 2), Trial("PENDING", 2)]
    for clock[0] in (0, 30, 90, 400):  # a trial running: the pending one just waits its turn
        watchdog.on_step_end(0, busy)
    waiting = [Trial("PENDING", 2)]
    for clock[0] in (500, 530, 600):  # nothing running, but a node can hold it: busy elsewhere, keep waiting
        watchdog.on_step_end(0, waiting)
    live[:] = [{"CPU": 1.0}]  # the 2-CPU node left
    watchdog.on_step_end(0, waiting)
    clock[0] = 700
    with pytest.raises(placement.TrialUnplaceable, match=r"trial t1 has waited 100 s for 2 CPUs, which no live node"):
        watchdog.on_step_end(0, waiting)
    assert pickle.loads(pickle.dumps(watchdog))._waiting_since is None  # a resumed search starts its own clock


def test_a_watchdog_pickled_where_it_lived_before_loads_from_its_new_module() -> None:
    """tuner.pkl of runs made before PlacementWatchdog moved to search.placement names it search.cluster's: a
    resume still finds it there (search.cluster's module __getattr__)."""
    from search import cluster, placement

    old_pickle = pickle.dumps(placement.PlacementWatchdog(timeout_s=30), protocol=0).replace(
        b"search.placement", b"search.cluster")
    assert b"csearch.cluster\nPlacementWatchdog" in old_pickle
    restored = pickle.loads(old_pickle)
    assert type(restored) is placement.PlacementWatchdog and restored.timeout_s == 30
    assert cluster.PlacementWatchdog is placement.PlacementWatchdog
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        cluster.NoSuchThing  # noqa: B018
