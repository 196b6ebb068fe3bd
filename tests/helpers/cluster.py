"""The scaled shape as processes: RabbitMQ, PostgreSQL, two API replicas
(`crab serve --no-worker`) and two workers (`crab worker`). Its fixtures are
in tests/integration/conftest.py."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crab import healthcheck
from crab.client.connection import CrabClient
from tests.helpers.process import LIFTED_LIMITS, CrabProcess
from tests.helpers.server import PASSWORD
from tests.helpers.services import free_port


def via(proxy_port: int, url: str) -> str:
    """The same AMQP URL, through a proxy on another port."""
    head, _, tail = url.rpartition("@")
    host_port, _, vhost = tail.partition("/")
    host = host_port.rsplit(":", 1)[0]
    return f"{head}@{host}:{proxy_port}/{vhost}"


@dataclass
class Cluster:
    broker: str
    database: str
    data: Path
    env: dict[str, str]
    apis: list[CrabProcess] = field(default_factory=list)
    workers: list[CrabProcess] = field(default_factory=list)
    health_ports: list[int] = field(default_factory=list)

    def start_api(self) -> CrabProcess:
        api = CrabProcess.start(
            self.data / f"api{len(self.apis)}",
            "--no-worker",
            "--broker",
            self.broker,
            "--database",
            self.database,
            env=self.env,
        )
        self.apis.append(api)
        return api

    def start_worker(self) -> CrabProcess:
        health = free_port()
        args = ["worker", "--broker", self.broker, "--database", self.database]
        args += ["--health", f"127.0.0.1:{health}"]
        worker = CrabProcess([*args, "--data-dir", str(self.data / "worker")], self.env)
        worker.wait_for_line("crab worker health on", timeout=30)
        self.workers.append(worker)
        self.health_ports.append(health)
        return worker

    def each_logged(self, pattern: str, timeout: float, times: int = 1) -> None:
        """Waits until every replica and worker has logged `pattern` (`times` times)."""
        for process in [*self.apis, *self.workers]:
            process.wait_for_line(pattern, timeout=timeout, times=times)

    async def workers_healthy(self) -> list[bool]:
        return [await healthcheck.check("127.0.0.1", port) for port in self.health_ports]

    def stop(self) -> None:
        for process in [*self.apis, *self.workers]:
            process.stop()

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, broker: str, database: str, data: Path, env: dict[str, str] | None = None
    ) -> Iterator[Cluster]:
        """Two API replicas and two workers, stopped at the end."""
        env = env or {"CRAB_JWT_SECRET": secrets.token_urlsafe(32), **LIFTED_LIMITS}
        found = cls(broker, database, data, env)
        try:
            # The first replica migrates the database before the others start.
            found.start_api()
            found.start_api()
            found.start_worker()
            found.start_worker()
            yield found
        finally:
            found.stop()


async def join(api: CrabProcess, name: str, clients: list[CrabClient]) -> CrabClient:
    client = CrabClient("127.0.0.1", api.port)
    clients.append(client)
    await client.sign_up(name, PASSWORD)
    return client
