"""The gRPC server: crab's servicers behind the error guard and the auth
listener, plus the standard health and reflection services."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

from grpclib.config import Configuration
from grpclib.events import RecvRequest, listen
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Handler, Server

from crab.config import Limits
from crab.core.api.auth import AuthListener
from crab.core.api.connections import Edge, EdgeProtocol
from crab.core.api.errors import Calls, Guarded
from crab.core.api.frame_encoder import FrameEncoder
from crab.core.api.internals import check_server
from crab.core.api.metrics_listener import count_calls
from crab.core.api.requests import RequestCodec, install_size_check
from crab.core.api.servicers import (
    AccountsServicer,
    ChatsServicer,
    InvitesServicer,
    UsersServicer,
)
from crab.core.api.session import SessionServicer
from crab.core.services.accounts import Accounts
from crab.core.services.chats import Chats
from crab.core.services.invites import Invites
from crab.core.services.live import Hub
from crab.core.services.message_changes import MessageChanges
from crab.core.services.messages import Messages
from crab.core.services.people import People
from crab.proto import upb

# What a client may send before the server reads it (grpclib's default is
# 4 MiB per stream and per connection): a request is at most 64 KiB.
WINDOW_BYTES = 256 * 1024


class CrabServer(Server):
    """grpclib's Server, with every connection under the Edge's limits and a
    deadline on TLS handshakes (grpclib passes neither). It opens its own
    listener, so its port and closing it need no grpclib internals; the
    grpclib fields it fills are checked in api/internals.py."""

    def __init__(self, handlers: list[Any], edge: Edge, codec: RequestCodec) -> None:
        super().__init__(
            handlers,
            codec=codec,
            config=Configuration(
                http2_connection_window_size=4 * WINDOW_BYTES,
                http2_stream_window_size=WINDOW_BYTES,
            ),
        )
        self.edge = edge
        self.listener: asyncio.Server | None = None
        check_server(self)

    def _protocol_factory(self) -> EdgeProtocol:
        self.__gc_step__()
        handler = Handler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        return EdgeProtocol(self.edge, handler, self._config, self._h2_config)

    async def start(  # type: ignore[override]
        self, host: str, port: int, *, ssl: ssl.SSLContext | None = None
    ) -> None:
        self.listener = await self._loop.create_server(
            self._protocol_factory,
            host,
            port,
            ssl=ssl,
            ssl_handshake_timeout=self.edge.limits.handshake_timeout if ssl else None,
            backlog=1024,
        )
        # What grpclib's own start sets: its close() and wait_closed() use them.
        self._server = self.listener
        self._server_closed_fut = self._loop.create_future()
        self.edge.start()

    @property
    def port(self) -> int:
        """The port it listens on (the one picked, when started on port 0)."""
        sockets = self.listener.sockets if self.listener is not None else ()
        return int(sockets[0].getsockname()[1]) if sockets else 0

    def stop_listening(self) -> None:
        """No new connections; the open ones carry on until close()."""
        if self.listener is not None:
            self.listener.close()

    def close(self) -> None:
        self.edge.stop()
        super().close()


def build_server(
    accounts: Accounts,
    people: People,
    chats: Chats,
    invites: Invites,
    messages: Messages,
    hub: Hub,
    limits: Limits,
    changes: MessageChanges,
) -> tuple[CrabServer, Health, Calls]:
    services: list[Any] = [
        AccountsServicer(accounts),
        UsersServicer(people),
        ChatsServicer(chats, changes),
        InvitesServicer(invites),
        SessionServicer(hub, messages, FrameEncoder()),
    ]
    health = Health()
    calls = Calls()
    guarded: list[Any] = [Guarded(s, calls) for s in services]
    install_size_check()
    edge = Edge(limits)
    server = CrabServer(
        ServerReflection.extend([*guarded, health], pool=upb.pool()),
        edge,
        RequestCodec(limits.max_request_bytes, limits.handshake_timeout),
    )
    count_calls(server)  # first: calls the auth listener refuses are counted too
    listen(server, RecvRequest, AuthListener(accounts, edge))
    return server, health, calls


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0 picks a free one), for a plain
    grpclib Server's `start(sock=...)`: its port is then the socket's."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    return context
