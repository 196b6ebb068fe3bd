"""Authentication for every call, in a grpclib RecvRequest listener: the
generated servicers never see metadata, so the caller travels to them in a
ContextVar set here, before the handler runs."""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar

from grpclib.events import RecvRequest

from crab.core.api.connections import Edge
from crab.core.api.errors import to_grpc, unexpected
from crab.core.domain.models import Caller
from crab.core.services.accounts import Accounts
from crab.errors import CrabError, Unauthenticated

log = logging.getLogger(__name__)

PUBLIC_METHODS = frozenset(
    {
        "/crab.v1.Accounts/SignUp",
        "/crab.v1.Accounts/SignIn",
        "/crab.v1.Accounts/Refresh",
        "/crab.v1.Accounts/GetSignInOptions",
        "/crab.v1.Accounts/SignInWithProvider",
    }
)

_caller: ContextVar[Caller | None] = ContextVar("crab_caller", default=None)
_peer: ContextVar[str] = ContextVar("crab_peer", default="")


def peer_address() -> str:
    """The source IP address of the current request ("" if unknown): the
    key of the per-address limits (sign-in, sign-up, ...)."""
    return _peer.get()


def caller() -> Caller:
    """The authenticated caller of the current request."""
    found = _caller.get()
    if found is None:
        raise Unauthenticated("sign in first")
    return found


def bearer_token(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not value:
        raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
    return token.strip()


class AuthListener:
    def __init__(self, accounts: Accounts, edge: Edge | None = None) -> None:
        self._accounts = accounts
        self._edge = edge

    async def __call__(self, event: RecvRequest) -> None:
        _caller.set(None)
        addr = event.peer.addr()
        _peer.set(str(addr[0]) if addr else "")
        name = event.method_name
        # Health and reflection are public by design; crab's own API is not.
        if name in PUBLIC_METHODS or not name.startswith("/crab."):
            return
        try:
            token = bearer_token(event.metadata.get("authorization"))
            # Shielded: a call reset by its client (a client quitting) cancels
            # us; cancelled mid-read, SQLAlchemy's aiosqlite adapter leaves a
            # close task pending for the garbage collector. Let the read finish.
            _caller.set(await asyncio.shield(self._accounts.authenticate(token)))
            if self._edge is not None:  # a signed-in connection may stay open
                # Peer._transport: grpclib's, checked in api/internals.py.
                self._edge.signed_in(getattr(event.peer, "_transport", None))
        except CrabError as error:
            raise to_grpc(error) from None
        except Exception as exc:
            raise unexpected(exc, "authentication") from None
