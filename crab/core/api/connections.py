"""What one connection may cost: caps on connections in all and per source
address, deadlines for a new connection's first request and for one that
never signs in or goes idle, HTTP/2 settings, and a budget of control
frames (PING, RST_STREAM, SETTINGS, PRIORITY) past which the connection
gets GOAWAY (ENHANCE_YOUR_CALM): a ping flood or a rapid reset (open a
stream, reset it, again) costs the server a handler each time.

grpclib has no knob for any of this; `EdgeProtocol` is its H2Protocol with
these checks around it, and `Edge` holds the connections of one server.
The grpclib internals it reaches (the h2 connection, the event processors)
are checked in api/internals.py: without them the server does not start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from grpclib.protocol import H2Protocol
from h2.errors import ErrorCodes
from h2.events import (
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamReset,
)
from h2.settings import SettingCodes

from crab.config import Limits
from crab.core.logs import Throttled

log = logging.getLogger(__name__)

# File descriptors kept for everything but client connections: the
# database and its journal, log files, the broker, threads' pipes.
FD_RESERVE = 256
SWEEP_SECONDS = 1.0
GOAWAY_GRACE = 0.5  # seconds between GOAWAY and closing the socket
MAX_HEADER_LIST_BYTES = 16 * 1024  # metadata of one call: a token is ~200 bytes
CONTROL_FRAMES = (PingReceived, StreamReset, RemoteSettingsChanged, PriorityUpdated)


def raise_open_file_limit() -> int:
    """Raises the soft open-file limit to the hard one; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


class Edge:
    """The connections of one server and the limits they live under."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        files = raise_open_file_limit()
        self.max_connections = max(1, min(limits.max_connections, files - FD_RESERVE))
        if self.max_connections < limits.max_connections:
            log.warning(
                "the open-file limit is %d: at most %d connections (asked for %d)",
                files,
                self.max_connections,
                limits.max_connections,
            )
        self._open: dict[int, EdgeProtocol] = {}  # id(transport) -> its protocol
        self._per_address: Counter[str] = Counter()
        self._refusals = Throttled(log, "connection refused")
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, protocol: EdgeProtocol) -> bool:
        address = protocol.address
        if len(self._open) >= self.max_connections:
            self._refusals.warning("%d connections open (the cap)", len(self._open))
            return False
        if self._per_address[address] >= self.limits.max_connections_per_address:
            self._refusals.warning(
                "%d connections open from %s (the cap)", self._per_address[address], address
            )
            return False
        self._open[protocol.key] = protocol
        self._per_address[address] += 1
        return True

    def forget(self, protocol: EdgeProtocol) -> None:
        if self._open.pop(protocol.key, None) is None:
            return
        self._per_address[protocol.address] -= 1
        if self._per_address[protocol.address] <= 0:
            del self._per_address[protocol.address]

    def signed_in(self, transport: Any) -> None:
        """A call on this connection was authenticated (the auth listener)."""
        protocol = self._open.get(id(transport))
        if protocol is not None:
            protocol.signed_in = True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for protocol in list(self._open.values()):
                protocol.check_deadlines(now)


class EdgeProtocol(H2Protocol):
    """grpclib's HTTP/2 protocol under crab's limits."""

    def __init__(self, edge: Edge, *args: Any) -> None:
        super().__init__(*args)
        self.edge = edge
        self.key = 0
        self.address = ""
        self.admitted = False
        self.closing = False
        self.signed_in = False
        self.requests = 0
        self.opened = self.active = time.monotonic()
        self._tokens = float(edge.limits.control_frame_burst)
        self._refilled = self.opened

    def connection_made(self, transport: Any) -> None:
        self.key = id(transport)
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "local"
        if not self.edge.admit(self):
            transport.abort()
            return
        self.admitted = True
        super().connection_made(transport)
        h2 = self.connection._connection
        h2.update_settings(
            {
                SettingCodes.MAX_CONCURRENT_STREAMS: self.edge.limits.max_streams_per_connection,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_BYTES,
            }
        )
        self.connection.flush()
        processors: dict[type, Any] = self.processor.processors
        for kind in CONTROL_FRAMES:
            processors[kind] = self._budgeted(processors[kind])
        processors[RequestReceived] = self._counted(processors[RequestReceived])

    def data_received(self, data: bytes) -> None:
        if self.admitted and not self.closing:
            super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.edge.forget(self)
        if self.admitted:
            super().connection_lost(exc)

    def _counted(self, process: Callable[[Any], None]) -> Callable[[Any], None]:
        def counted(event: Any) -> None:
            self.requests += 1
            process(event)

        return counted

    def _budgeted(self, process: Callable[[Any], None]) -> Callable[[Any], None]:
        def budgeted(event: Any) -> None:
            now = time.monotonic()
            limits = self.edge.limits
            self._tokens = min(
                limits.control_frame_burst,
                self._tokens + (now - self._refilled) * limits.control_frame_rate,
            )
            self._refilled = now
            self._tokens -= 1
            if self._tokens < 0:
                self.go_away(ErrorCodes.ENHANCE_YOUR_CALM, f"too many {type(event).__name__}")
                return
            process(event)

        return budgeted

    def check_deadlines(self, now: float) -> None:
        limits = self.edge.limits
        busy = bool(getattr(self.processor, "streams", None))
        if busy:
            self.active = now
        age = now - self.opened
        if self.requests == 0:
            if age > limits.handshake_timeout:
                self.go_away(ErrorCodes.NO_ERROR, "no request in time")
            return
        if not self.signed_in and age > limits.unauthenticated_timeout:
            if not busy or age > 2 * limits.unauthenticated_timeout:
                self.go_away(ErrorCodes.NO_ERROR, "not signed in")
            return
        if not busy and now - self.active > limits.idle_timeout:
            self.go_away(ErrorCodes.NO_ERROR, "idle")

    def go_away(self, code: ErrorCodes, why: str) -> None:
        """GOAWAY, then close: calls in progress end as the connection does.
        What the client sends meanwhile is read and dropped for a moment, so
        the close is a FIN that lets the GOAWAY be read, not a reset."""
        if self.closing:
            return
        self.closing = True
        log.debug("closing connection from %s: %s", self.address, why)
        with contextlib.suppress(Exception):
            self.connection._connection.close_connection(error_code=code)
            self.connection.flush()
        self.edge.forget(self)
        asyncio.get_running_loop().call_later(
            GOAWAY_GRACE, self.processor.close, f"connection closed by the server: {why}"
        )
