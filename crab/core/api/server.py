"""The gRPC server: crab's servicers behind the error guard and the auth
listener, plus the standard health and reflection services."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from grpclib.events import RecvRequest, listen
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection
from grpclib.server import Server

from crab.core.api.auth import AuthListener
from crab.core.api.errors import Calls, Guarded
from crab.core.api.frames import FrameEncoder, PassThroughCodec
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


def build_server(
    accounts: Accounts,
    people: People,
    chats: Chats,
    invites: Invites,
    messages: Messages,
    hub: Hub,
) -> tuple[Server, Health, Calls]:
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
    server = Server(
        ServerReflection.extend([*guarded, health], pool=upb.pool()),
        codec=PassThroughCodec(),
    )
    listen(server, RecvRequest, AuthListener(accounts))
    return server, health, calls


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    return context
