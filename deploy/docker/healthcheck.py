"""Container health check for docker compose (Kubernetes uses native grpc/httpGet probes).

    python healthcheck.py grpc HOST:PORT [SERVICE]   # grpc.health.v1 Check == SERVING
    python healthcheck.py http URL                   # HTTP 2xx

Exit 0 when healthy, 1 otherwise. Only the standard library and grpcio-health-checking (already a
crossguard dependency) are used, so no extra binary (grpc_health_probe, curl) is in the image.
"""

from __future__ import annotations

import sys
import urllib.request

TIMEOUT_S = 3.0


def check_grpc(target: str, service: str = "") -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            print(f"unhealthy: {target} {service!r}: {exc.code()}", file=sys.stderr)
            return False
    ok = reply.status == health_pb2.HealthCheckResponse.SERVING
    if not ok:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"unhealthy: {target} {service!r}: {status}", file=sys.stderr)
    return ok


def check_http(url: str) -> bool:
    if not url.startswith(("http://", "https://")):
        print(f"not an http(s) URL: {url}", file=sys.stderr)
        return False
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return 200 <= int(response.status) < 300
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return False


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "grpc":
        return 0 if check_grpc(argv[1], argv[2] if len(argv) > 2 else "") else 1
    if len(argv) == 2 and argv[0] == "http":
        return 0 if check_http(argv[1]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
