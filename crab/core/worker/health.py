"""The worker's health service. A worker has no API, so probes (compose,
Kubernetes) ask this: SERVING while its broker is connected and its
database answers, NOT_SERVING otherwise (the standard grpc.health.v1)."""

from __future__ import annotations

import sqlalchemy as sa
from grpclib.health.check import ServiceCheck
from grpclib.health.service import OVERALL, Health
from grpclib.server import Server
from sqlalchemy.ext.asyncio import AsyncEngine

from crab.core.broker.base import Broker


def worker_health(engine: AsyncEngine, broker: Broker) -> Server:
    async def healthy() -> bool:
        if not broker.online:
            return False
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True

    # Checked at most every 5 s, however often probes ask.
    return Server([Health({OVERALL: [ServiceCheck(healthy, check_ttl=5, check_timeout=5)]})])
