"""The README's cluster commands as a user types them (issue 24): after a local search has left ~/.ray/auth_token,
`ray start --head` runs its cluster in token mode, and `python launch.py --address auto` must join it with no
extra environment; where this machine cannot give the cluster's token, one line names the exact fix.

The slow test runs both commands in a user's environment: no RAY_AUTH_MODE / RAY_AUTH_TOKEN set by the test, an
isolated HOME holding the token file a local search writes (never the real one), and TMPDIR private to the test,
so `--address auto` finds this head (Ray records the last `ray start` in $TMPDIR/ray) and no other Ray on the
machine. The quick tests check each branch of `search.address.probe` against a stand-in for the GCS call.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import grpc
import pytest

from search import address
from search.options import OptionError


def shell_env(cli, home: Path, tmp: Path, **extra: str) -> dict[str, str]:
    """A user's shell (the session's user environment: no Ray auth or address variables) with HOME `home` and
    TMPDIR `tmp`."""
    return cli.env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), TMPDIR=str(tmp), **extra)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("launch.py: error: "), stderr
    return lines[0]


@pytest.mark.slow
def test_ray_start_head_then_launch_address_auto_as_a_user_types_them(tmp_path, cli, ray_head) -> None:
    tmp = Path(f"/tmp/ecgU{secrets.token_hex(3)}")  # short: Ray's socket paths must fit in 107 bytes
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True, mode=0o700)
    token = home / ".ray" / "auth_token"
    token.write_text(secrets.token_hex(32))  # what a local search leaves behind (search.cluster)
    token.chmod(0o600)
    env = shell_env(cli, home, tmp)
    assert not any(k.startswith("RAY_AUTH") for k in env)
    results = tmp_path / "results"
    try:
        # `ray start --head` in that shell: --temp-dir is where TMPDIR puts it anyway ($TMPDIR/ray); the ports are
        # free ones so that the test does not meet another Ray on this machine.
        with ray_head(tmp / "ray", num_cpus=2, num_gpus=0, env=env, own_token=False):
            joined = cli.launch("--address", "auto", *cli.small, "--num-samples", "1", "--max-epochs", "1",
                                "--top-k", "1", "--results-dir", str(results), env=env)
            # The head really asks for the token: without it, or with token mode turned off here, the one line
            # says what to do (with another token: tests/search/test_safety.py, test_6).
            (tmp_path / "empty-home").mkdir()
            none = cli.launch("--address", "auto", env=shell_env(cli, tmp_path / "empty-home", tmp))
            off = cli.launch("--address", "auto", env={**env, "RAY_AUTH_MODE": "disabled"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert joined.returncode == 0, (joined.stdout + joined.stderr)[-3000:]
    run_dir = cli.only_run(results)
    trials = cli.read_csv(run_dir / "trials.csv")
    assert len(trials) == 1 and trials["status"].tolist() == ["TERMINATED"]
    assert (run_dir / "test_results.csv").is_file()

    assert none.returncode == 2 and off.returncode == 2
    line = one_line(none.stderr)
    assert "--address auto: the cluster at" in line and "requires Ray's auth token and this machine has none" in line
    assert "set RAY_AUTH_TOKEN to the token `ray get-auth-token` prints on the head node" in line
    line = one_line(off.stderr)
    assert "requires Ray's auth token and RAY_AUTH_MODE='disabled' here turns it off; unset RAY_AUTH_MODE" in line
    assert f"this machine's token (from {token}) is then sent" in line


class _Refused(grpc.RpcError):
    """What the GCS answers a call it refuses."""

    def __init__(self, code) -> None:
        super().__init__(code)
        self._code = code

    def code(self):
        return self._code

    def details(self) -> str:
        return "refused"


@pytest.fixture
def gcs(monkeypatch, tmp_path):
    """`probe` against a stand-in cluster that takes only `token` (None: takes any call); returns the calls'
    auth modes. HOME is a temporary folder, RAY_AUTH_* unset, and the address resolves to itself."""
    import ray._private.services as services

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda addr, temp_dir=None: "10.0.0.1:6379")
    state = {"token": "t" * 64, "calls": []}

    def call(resolved: str, timeout_s: float) -> None:
        mode = os.environ.get("RAY_AUTH_MODE")
        given = os.environ.get("RAY_AUTH_TOKEN") or (
            (tmp_path / ".ray" / "auth_token").read_text() if (tmp_path / ".ray" / "auth_token").exists() else None)
        state["calls"].append(mode)
        if state["token"] is not None and (mode != "token" or given != state["token"]):
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED)

    monkeypatch.setattr(address, "_cluster_id", call)
    yield state
    address.restore_auth_mode()


def _token_file(home: Path, token: str) -> None:
    (home / ".ray").mkdir(exist_ok=True)
    (home / ".ray" / "auth_token").write_text(token)


def test_a_token_cluster_is_asked_again_with_the_token_file_and_token_mode_stays_for_ray_init(gcs, tmp_path):
    _token_file(tmp_path, "t" * 64)
    assert address.probe("auto") == "10.0.0.1:6379"
    assert gcs["calls"] == [None, "token"] and os.environ["RAY_AUTH_MODE"] == "token"
    address.restore_auth_mode()
    assert "RAY_AUTH_MODE" not in os.environ  # as it was before the search


def test_a_cluster_without_auth_is_joined_without_turning_token_mode_on(gcs, tmp_path):
    gcs["token"] = None
    _token_file(tmp_path, "t" * 64)
    assert address.probe("auto") == "10.0.0.1:6379"
    assert gcs["calls"] == [None] and "RAY_AUTH_MODE" not in os.environ


def refusal(where: str) -> str:
    """The one line `address.probe(where)` refuses with."""
    with pytest.raises(OptionError) as refused:
        address.probe(where)
    return str(refused.value)


def test_no_token_on_this_machine_names_the_fix(gcs, tmp_path):
    assert refusal("auto") == (
        "--address auto: the cluster at 10.0.0.1:6379 requires Ray's auth token and this machine has none "
        f"(RAY_AUTH_TOKEN is unset and {tmp_path}/.ray/auth_token does not exist); set RAY_AUTH_TOKEN to the "
        f"token `ray get-auth-token` prints on the head node, or save it as {tmp_path}/.ray/auth_token")
    assert gcs["calls"] == [None]


def test_another_clusters_token_is_refused_and_token_mode_is_undone(gcs, tmp_path):
    _token_file(tmp_path, "x" * 64)
    assert refusal("10.0.0.1:6379") == (
        "--address 10.0.0.1:6379: the cluster at 10.0.0.1:6379 refused this machine's Ray auth token (from "
        f"{tmp_path}/.ray/auth_token); set RAY_AUTH_TOKEN to the token `ray get-auth-token` prints on the head "
        f"node, or write it into {tmp_path}/.ray/auth_token; or run on the head node with --address auto")
    assert gcs["calls"] == [None, "token"] and "RAY_AUTH_MODE" not in os.environ


def test_auth_mode_disabled_by_the_user_is_respected_and_named(gcs, tmp_path, monkeypatch):
    _token_file(tmp_path, "t" * 64)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(OptionError, match=r"RAY_AUTH_MODE='disabled' here turns it off; unset RAY_AUTH_MODE "
                                          r"\(this machine's token \(from .*auth_token\) is then sent\)$"):
        address.probe("auto")
    assert gcs["calls"] == ["disabled"] and os.environ["RAY_AUTH_MODE"] == "disabled"


def test_the_token_in_the_environment_comes_before_the_file(gcs, tmp_path, monkeypatch):
    _token_file(tmp_path, "x" * 64)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 64)
    assert address.probe("auto") == "10.0.0.1:6379" and gcs["calls"] == [None, "token"]
