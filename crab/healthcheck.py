"""`python -m crab.healthcheck [host:port]`: exit 0 when the server
answers SERVING on grpc.health.v1 (the container's HEALTHCHECK)."""

from __future__ import annotations

import asyncio
import os
import sys

from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse


async def check(host: str, port: int) -> bool:
    channel = Channel(host, port)
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(), timeout=3)
        return bool(reply.status == HealthCheckResponse.SERVING)
    except Exception:  # refused, reset, timed out, an error status: all unhealthy
        return False
    finally:
        channel.close()


def main() -> None:
    default = f"127.0.0.1:{os.environ.get('CRAB_PORT', '50051')}"
    target = sys.argv[1] if len(sys.argv) > 1 else default
    host, _, port = target.rpartition(":")
    sys.exit(0 if asyncio.run(check(host or "127.0.0.1", int(port))) else 1)


if __name__ == "__main__":
    main()
