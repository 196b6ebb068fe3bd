"""The worker's health service. A worker has no API, so probes (compose,
Kubernetes) ask this: SERVING while its broker is connected and its
database answers, NOT_SERVING otherwise (the standard grpc.health.v1)."""

from __future__ import annotations

from grpclib.health.check import ServiceCheck
from grpclib.health.service import OVERALL, Health
from grpclib.server import Server
from sqlalchemy.engine import Connection

from crab.core.broker.base import Broker
from crab.core.storage.database import Database


def _answers(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1")


def worker_health(database: Database, broker: Broker) -> Server:
    async def healthy() -> bool:
        if not broker.online:
            return False
        await database.read(_answers)
        return True

    # Checked at most every 5 s, however often probes ask.
    return Server([Health({OVERALL: [ServiceCheck(healthy, check_ttl=5, check_timeout=5)]})])
