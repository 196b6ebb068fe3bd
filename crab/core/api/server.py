"""The gRPC server: crab's servicers behind the error guard and the auth
listener, plus the standard health and reflection services."""

from __future__ import annotations

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
from crab.core.api.frames import FrameEncoder
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
from crab.core.services.messages import Messages
from crab.core.services.people import People
from crab.proto import upb

# What a client may send before the server reads it (grpclib's default is
# 4 MiB per stream and per connection): a request is at most 64 KiB.
WINDOW_BYTES = 256 * 1024


class CrabServer(Server):
    """grpclib's Server, with every connection under the Edge's limits and a
    deadline on TLS handshakes (grpclib passes neither)."""

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

    def _protocol_factory(self) -> EdgeProtocol:
        self.__gc_step__()
        handler = Handler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        return EdgeProtocol(self.edge, handler, self._config, self._h2_config)

    async def start(  # type: ignore[override]
        self, host: str, port: int, *, ssl: ssl.SSLContext | None = None
    ) -> None:
        self._server = await self._loop.create_server(
            self._protocol_factory,
            host,
            port,
            ssl=ssl,
            ssl_handshake_timeout=self.edge.limits.handshake_timeout if ssl else None,
            backlog=1024,
        )
        self._server_closed_fut = self._loop.create_future()
        self.edge.start()

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
) -> tuple[CrabServer, Health, Calls]:
    services: list[Any] = [
        AccountsServicer(accounts),
        UsersServicer(people),
        ChatsServicer(chats),
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
    listen(server, RecvRequest, AuthListener(accounts, edge))
    return server, health, calls


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    return context
