"""`--address`: find the cluster and make one authenticated call to it before `ray.init`, so that an
unreachable cluster or one refusing the token is one line naming the address and the likely cause within
seconds (ray.init itself retries for 20 s to minutes and then says only "Failed to connect").

Imports ray and grpc only (no Ray Tune, no torch): launch.py probes before the rest of the search is imported.
"""
from __future__ import annotations

from search.options import OptionError

# A refused port answers at once; a host that drops packets is given up on after this long.
PROBE_TIMEOUT_S = 10.0


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The GCS address (HOST:PORT) of the cluster `address` names, after one authenticated call to it.

    Raises OptionError (one line: the address and the likely cause) when there is no cluster to find, nothing
    answers, or the cluster refuses this machine's token, instead of ray.init's retries without a cause.
    """
    import grpc
    from ray._private.gcs_utils import create_gcs_channel
    from ray._private.services import canonicalize_bootstrap_address
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    try:
        resolved = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError):
        resolved = None
    if not resolved:
        raise OptionError(f"--address {address}: no running Ray cluster found on this machine (start one with "
                          "`ray start --head`, or give the head node's HOST:PORT)")
    channel = create_gcs_channel(resolved)
    try:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)
    except grpc.RpcError as err:
        code = err.code()
        if code == grpc.StatusCode.UNAUTHENTICATED:
            where = "" if address == "auto" else ", or run on the head node with --address auto"
            raise OptionError(f"--address {address}: the cluster at {resolved} refused this machine's Ray auth "
                              f"token; set RAY_AUTH_TOKEN to the one `ray get-auth-token` prints on the head node"
                              f"{where}") from None
        cause = (err.details() or str(code)).rsplit(": ", 1)[-1]
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            cause = f"no answer within {timeout_s:g} s"
        raise OptionError(f"--address {address}: cannot reach a Ray cluster at {resolved} ({cause}); is the head "
                          "node started (`ray start --head`) and its port open? On the head node use "
                          "--address auto") from None
    finally:
        channel.close()
    return resolved
