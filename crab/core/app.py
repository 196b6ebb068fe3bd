"""The composition root: settings -> storage -> broker -> services ->
worker and gRPC server. `crab serve`, `crab worker` and the tests all
build crab here, in whichever role they need."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from datetime import timedelta

from grpclib.health.service import Health
from grpclib.server import Server
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from crab.config import Settings
from crab.core.api.errors import Calls
from crab.core.api.server import CrabServer, bound_socket, build_server, tls_context
from crab.core.broker.base import Broker
from crab.core.broker.memory import MemoryBroker
from crab.core.metrics_gauges import CallGauges, HubGauges
from crab.core.metrics_http import MetricsServer
from crab.core.services.accounts import Accounts
from crab.core.services.admin import Admin
from crab.core.services.calls import Phone
from crab.core.services.chats import Chats
from crab.core.services.invites import Invites
from crab.core.services.live import Hub
from crab.core.services.message_changes import MessageChanges
from crab.core.services.messages import Messages
from crab.core.services.oidc import IdentityProvider
from crab.core.services.passwords import Passwords
from crab.core.services.people import People
from crab.core.services.presence import PresenceBoard
from crab.core.services.resume import ResumeLimits
from crab.core.services.tokens import AccessTokens, load_or_create_secret
from crab.core.storage.database import Database
from crab.core.storage.engine import ensure_sqlite_dir
from crab.core.storage.files import private_dir
from crab.core.storage.lock import DatabaseLock
from crab.core.worker.handlers import Worker
from crab.core.worker.health import worker_health

log = logging.getLogger("crab")


def create_broker(url: str) -> Broker:
    if url.startswith("memory:"):
        return MemoryBroker()
    if url.startswith(("amqp://", "amqps://")):
        from crab.core.broker.amqp import AmqpBroker  # aio-pika only when used

        return AmqpBroker(url)
    raise ValueError(f"unsupported broker URL {url!r} (this build knows memory:// and amqp://)")


@dataclass
class Crab:
    settings: Settings
    database: Database
    broker: Broker
    accounts: Accounts
    people: People
    chats: Chats
    invites: Invites
    messages: Messages
    hub: Hub
    changes: MessageChanges
    admin: Admin
    worker: Worker | None = None
    server: Server | None = None
    health: Health | None = None
    calls: Calls | None = None
    port: int = 0
    # Held while open: `crab restore` refuses a database in use (storage/lock.py).
    lock: DatabaseLock | None = None
    metrics: MetricsServer | None = None
    _gauges: list[Collector] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def open(cls, settings: Settings) -> Crab:
        """Storage migrated, broker and services ready; nothing listening yet."""
        # Messages and password hashes live here: only the owner may look.
        private_dir(settings.data_dir)
        ensure_sqlite_dir(settings.database)
        lock = DatabaseLock.shared(settings.database)
        database = Database(settings.database)
        try:
            await database.migrate()
            broker = create_broker(settings.broker_url)
            await broker.start()
        except BaseException:
            await database.close()
            if lock is not None:
                lock.release()
            raise
        secret = settings.jwt_secret or load_or_create_secret(settings.data_dir)
        limits = settings.limits
        presence = PresenceBoard(
            database, broker, limits.presence_heartbeat, limits.presence_expiry
        )
        passwords = Passwords(
            cheap=settings.password_hashing == "cheap",
            queue=limits.hash_queue,
            queue_per_address=limits.hash_queue_per_address,
        )
        accounts = Accounts(
            database,
            broker,
            passwords,
            AccessTokens(secret, timedelta(seconds=settings.access_token_ttl)),
            timedelta(seconds=settings.refresh_token_ttl),
            settings.signup,
            limits,
            IdentityProvider(settings.oidc) if settings.oidc.enabled else None,
            settings.passwords,
        )
        return cls(
            settings=settings,
            database=database,
            lock=lock,
            broker=broker,
            accounts=accounts,
            people=People(database, limits),
            chats=Chats(database, broker, limits, presence),
            invites=Invites(database, broker, limits),
            messages=Messages(broker, limits),
            hub=Hub(
                database,
                broker,
                limits.stream_buffer,
                ResumeLimits(limits.resume_cursors_max, limits.resume_rate, limits.resume_burst),
                presence,
                limits.typing_interval,
                max_message_chars=limits.max_message_chars,
                phone=Phone(database, broker, limits, settings.calls),
                session_check=limits.session_check_interval,
            ),
            changes=MessageChanges(database, broker, limits),
            admin=Admin(database, broker, passwords),
        )

    async def start_worker(self) -> None:
        self.worker = Worker(self.database, self.broker, self.settings.db_outage_wait)
        await self.worker.start(self.settings.worker_concurrency)

    async def start_worker_health(self, host: str, port: int) -> int:
        """`crab worker`'s health service (it serves nothing else); returns its port."""
        self.server = worker_health(self.database, self.broker)
        sock = bound_socket(host, port)  # its port is known: no grpclib internals
        await self.server.start(sock=sock)
        return int(sock.getsockname()[1])

    async def start_server(self) -> int:
        """Listens on settings.host:port (port 0 picks a free one); returns the port."""
        s = self.settings
        await self.hub.start()
        server, self.health, self.calls = build_server(
            self.accounts,
            self.people,
            self.chats,
            self.invites,
            self.messages,
            self.hub,
            s.limits,
            self.changes,
        )
        self.server = server
        context: ssl.SSLContext | None = None
        if s.tls_cert and s.tls_key:
            context = tls_context(s.tls_cert, s.tls_key)
        elif not _is_loopback(s.host):
            log.warning(
                "!!! PLAINTEXT on %s: passwords and messages cross the network unencrypted. "
                "Give --tls-cert and --tls-key to serve TLS. !!!",
                s.host,
            )
        await server.start(s.host, s.port, ssl=context)
        self.port = server.port or s.port
        return self.port

    async def start_metrics(self, host: str, port: int) -> int:
        """Prometheus metrics on host:port (0: a free port); returns the port.
        A server (after start_server) adds its sessions' and calls' gauges."""
        refreshes = []
        if self.server is not None and self.calls is not None:  # the API role
            calls = CallGauges(self.database)
            self._gauges = [HubGauges(self.hub), calls]
            refreshes.append(calls.refresh)
        for gauges in self._gauges:
            REGISTRY.register(gauges)
        self.metrics = MetricsServer(refreshes)
        return await self.metrics.start(host, port)

    async def close(self, grace: float = 10.0) -> None:
        """Graceful: stop listening, tell open streams, let in-flight
        commands finish, then stop the worker and the database."""
        if self._closed:
            return
        self._closed = True
        if self.metrics is not None:
            await self.metrics.close()
        for gauges in self._gauges:
            REGISTRY.unregister(gauges)
        if isinstance(self.server, CrabServer):
            self.server.stop_listening()  # no new connections; open ones carry on
        await self.hub.close()  # open streams end with UNAVAILABLE: resume elsewhere
        if self.calls is not None:
            try:
                await asyncio.wait_for(self.calls.wait_idle(), grace)
            except TimeoutError:
                log.warning("%d calls did not finish within %.0fs", self.calls.active, grace)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.broker.close()
        await self.database.close()
        await self.accounts.close()
        self.chats.close()
        if self.lock is not None:
            self.lock.release()


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
