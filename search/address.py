"""`--address`: find the cluster and make one authenticated call to it before `ray.init`, so that an
unreachable cluster or one refusing the token is one line naming the address and the exact fix within
seconds (ray.init itself retries for 20 s to minutes and then says only "Failed to connect").

Token auth (Ray 2.60, ray/_private/authentication/): `ray start --head` runs the cluster in token mode when
RAY_AUTH_MODE is unset and a token exists (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, which
any local search creates), but a driver joining it at an explicit HOST:PORT stays in mode "disabled" and
sends no token, and `ray.init` turns token mode on by itself only for `address="auto"`. So a cluster that
asks for a token is asked again with this machine's token, as `ray start` itself would use it; the README's
`ray start --head` then `python launch.py --address auto` works with no extra environment.

Imports ray and grpc only (no Ray Tune, no torch): launch.py probes before the rest of the search is imported.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ecg.values import quote
from search.options import OptionError

# A refused port answers at once; a host that drops packets is given up on after this long.
PROBE_TIMEOUT_S = 10.0
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
# RAY_AUTH_MODE as it was before `use_token_auth` set it (None: unset), so `restore_auth_mode` can undo it.
_saved_auth_mode: tuple[str | None] | None = None


def token_file() -> Path:
    """Where Ray keeps its auth token: $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    custom = os.environ.get(TOKEN_PATH_ENV)
    return Path(custom).expanduser() if custom else Path.home() / ".ray" / "auth_token"


def token_source() -> str | None:
    """Where this machine's Ray token would come from ("RAY_AUTH_TOKEN" or the token file), or None."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return TOKEN_ENV
    path = token_file()
    try:
        return str(path) if path.read_text().strip() else None
    except OSError:
        return None


def use_token_auth() -> None:
    """Turn Ray's token mode on for this process (RAY_AUTH_MODE=token, Ray's config reloaded), as
    `ray start` and `ray.init(address="auto")` do when a token exists; `restore_auth_mode` undoes it."""
    global _saved_auth_mode
    from ray._raylet import AuthenticationTokenLoader, Config

    if _saved_auth_mode is None:
        _saved_auth_mode = (os.environ.get(AUTH_MODE_ENV),)
    os.environ[AUTH_MODE_ENV] = "token"
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def restore_auth_mode() -> None:
    """RAY_AUTH_MODE back to what it was before `use_token_auth` (a later local search decides afresh)."""
    global _saved_auth_mode
    if _saved_auth_mode is None:
        return
    from ray._raylet import AuthenticationTokenLoader, Config

    (before,) = _saved_auth_mode
    if before is None:
        os.environ.pop(AUTH_MODE_ENV, None)
    else:
        os.environ[AUTH_MODE_ENV] = before
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    _saved_auth_mode = None


def _cluster_id(resolved: str, timeout_s: float) -> None:
    """One GetClusterId call to the GCS at `resolved` (a channel with this process's auth mode)."""
    from ray._private.gcs_utils import create_gcs_channel
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    channel = create_gcs_channel(resolved)
    try:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)
    finally:
        channel.close()


def _token_refused(address: str, resolved: str) -> OptionError:
    """The one line for a cluster that wants a token this machine does not give: which token was tried (or why
    none was), and the exact fix."""
    head = f"--address {address}: the cluster at {resolved}"
    get = "the token `ray get-auth-token` prints on the head node"
    elsewhere = "" if address == "auto" else "; or run on the head node with --address auto"
    source = token_source()
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is not None and mode.lower() != "token":
        then = (f"this machine's token (from {source}) is then sent" if source is not None
                else f"and set {TOKEN_ENV} to {get}")
        return OptionError(f"{head} requires Ray's auth token and {AUTH_MODE_ENV}={quote(mode)} here turns it "
                           f"off; unset {AUTH_MODE_ENV} ({then})")
    if source is None:
        return OptionError(f"{head} requires Ray's auth token and this machine has none ({TOKEN_ENV} is unset "
                           f"and {token_file()} does not exist); set {TOKEN_ENV} to {get}, or save it as "
                           f"{token_file()}")
    fix = f"set {TOKEN_ENV} to {get}"
    if source != TOKEN_ENV:
        fix += f", or write it into {source}"
    return OptionError(f"{head} refused this machine's Ray auth token (from {source}); {fix}{elsewhere}")


def _call_with_this_machines_auth(resolved: str, timeout_s: float) -> None:
    """`_cluster_id`, asked again with this machine's token when the cluster refuses the call unauthenticated
    and RAY_AUTH_MODE leaves the choice to us (unset, as `ray start` reads it); token mode stays on after a
    success, for the `ray.init` that follows, and is undone after a failure."""
    import grpc

    try:
        _cluster_id(resolved, timeout_s)
        return
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNAUTHENTICATED or AUTH_MODE_ENV in os.environ or token_source() is None:
            raise
    use_token_auth()
    try:
        _cluster_id(resolved, timeout_s)
    except grpc.RpcError:
        restore_auth_mode()
        raise


@contextlib.contextmanager
def _held_ray_warnings() -> Iterator[list[logging.LogRecord]]:
    """What Ray's address lookup logs, held back instead of printed: a refusal stays one line."""
    logger = logging.getLogger("ray._private.services")
    held: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = held.append  # type: ignore[method-assign]
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield held
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The GCS address (HOST:PORT) of the cluster `address` names, after one authenticated call to it.

    A cluster that refuses the call unauthenticated is asked again with this machine's token (RAY_AUTH_TOKEN
    or the token file), token mode then staying on for the `ray.init` that follows. Raises OptionError (one
    line: the address, the likely cause and the fix) when there is no cluster to find, nothing answers, or
    the cluster refuses this machine's token, instead of ray.init's retries without a cause.
    """
    import grpc
    from ray._private.services import canonicalize_bootstrap_address

    with _held_ray_warnings() as held:  # "Found multiple active Ray instances": shown only if we join
        try:
            resolved = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError):
            resolved = None
    if not resolved:
        raise OptionError(f"--address {address}: no running Ray cluster found on this machine (start one with "
                          "`ray start --head`, or give the head node's HOST:PORT)")
    try:
        _call_with_this_machines_auth(resolved, timeout_s)
        for record in held:
            logging.getLogger(record.name).handle(record)
    except grpc.RpcError as err:
        code = err.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise _token_refused(address, resolved) from None
        cause = (err.details() or str(code)).rsplit(": ", 1)[-1]
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            cause = f"no answer within {timeout_s:g} s"
        raise OptionError(f"--address {address}: cannot reach a Ray cluster at {resolved} ({cause}); is the head "
                          "node started (`ray start --head`) and its port open? On the head node use "
                          "--address auto") from None
    return resolved
