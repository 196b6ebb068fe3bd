"""The account signed in on this device: the client's tokens, refreshed when
the server says the access token expired, and saved per server
(crab/tui/saved.py) so that the next start opens straight into the chats."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from crab.tui.saved import SavedSession, SessionFile

T = TypeVar("T")


class Account:
    def __init__(
        self,
        client: CrabClient,
        sessions: SessionFile,
        server: str,
        on_signed_out: Callable[[str], None],
    ) -> None:
        """`on_signed_out(reason)`: the server refused the refresh token (the
        session was ended elsewhere, or the token was used twice)."""
        self.client = client
        self.sessions = sessions
        self.server = server
        self._on_signed_out = on_signed_out

    @property
    def signed_in(self) -> bool:
        return self.client.tokens is not None

    async def call(self, rpc: Callable[[], Awaitable[T]]) -> T:
        """An RPC with the current token; an expired token is refreshed once."""
        try:
            return await rpc()
        except GRPCError as error:
            if error.status is not Status.UNAUTHENTICATED or self.client.tokens is None:
                raise
            await self.refresh()
            return await rpc()

    async def refresh(self) -> None:
        """New tokens, saved. Refused (UNAUTHENTICATED; PERMISSION_DENIED: an
        admin disabled the account), the session is over: `on_signed_out`,
        then the error is raised."""
        try:
            await self.client.refresh()
        except GRPCError as error:
            if error.status is Status.UNAUTHENTICATED:
                self._on_signed_out("your session ended; sign in again")
            elif error.status is Status.PERMISSION_DENIED:
                self._on_signed_out(f"signed out: {error.message or 'refused'}")
            raise
        self.save()

    def restore(self) -> SavedSession | None:
        """This server's saved session, its tokens handed to the client."""
        saved = self.sessions.load(self.server)
        if saved is not None:
            self.client.tokens = pb.Tokens(
                access_token=saved.access_token,
                refresh_token=saved.refresh_token,
                user=pb.User(username=saved.username),
            )
        return saved

    def save(self) -> None:
        tokens = self.client.tokens
        if tokens is not None and tokens.user is not None:
            self.sessions.save(
                SavedSession(
                    self.server, tokens.user.username, tokens.access_token, tokens.refresh_token
                )
            )

    def forget(self) -> None:
        """Signed out on this device: no saved session, no tokens."""
        self.sessions.forget(self.server)
        self.client.tokens = None
