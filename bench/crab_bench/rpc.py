"""Unary calls on a grpclib channel with the upb message classes."""

from __future__ import annotations

from typing import Any

from grpclib.client import Channel, UnaryUnaryMethod
from grpclib.protocol import H2Protocol

from crab_bench import wire as w

PASSWORD = "bench-password-1"


class SourceChannel(Channel):
    """A grpclib channel whose connections leave from `local_host` (e.g.
    127.0.0.2 to a server on 127.0.0.1: all of 127/8 is loopback on Linux),
    so a server that counts per source address sees another client.
    grpclib has no option for it: this overrides its private
    `_create_connection` (checked when the class is defined)."""

    def __init__(self, host: str, port: int, local_host: str) -> None:
        super().__init__(host, port)
        self.local_host = local_host

    async def _create_connection(self) -> H2Protocol:
        _, protocol = await self._loop.create_connection(
            self._protocol_factory, self._host, self._port, local_addr=(self.local_host, 0)
        )
        return protocol


if not callable(getattr(Channel, "_create_connection", None)):  # pragma: no cover
    raise ImportError("grpclib's Channel has no _create_connection: SourceChannel needs a new way")


def other_loopback(host: str) -> str | None:
    """Another loopback address to connect from when `host` is a loopback
    IPv4 address (None otherwise: the caller's address is what it is)."""
    if host == "localhost" or host.startswith("127."):
        return "127.0.0.3" if host == "127.0.0.2" else "127.0.0.2"
    return None


def auth(token: str | None) -> dict[str, str] | None:
    return {"authorization": f"Bearer {token}"} if token else None


async def unary(
    channel: Channel,
    path: str,
    request: Any,
    reply_type: Any,
    token: str | None = None,
    timeout: float = 60.0,
) -> Any:
    method: Any = UnaryUnaryMethod(channel, path, type(request), reply_type)
    return await method(request, timeout=timeout, metadata=auth(token))


async def sign_up(channel: Channel, username: str, password: str = PASSWORD) -> Any:
    """Tokens of a new account."""
    m = w.wire()
    request = m.SignUpRequest(username=username, password=password, display_name=username)
    return await unary(channel, w.SIGN_UP, request, m.Tokens)


async def sign_in(channel: Channel, username: str, password: str = PASSWORD) -> Any:
    m = w.wire()
    request = m.SignInRequest(username=username, password=password)
    return await unary(channel, w.SIGN_IN, request, m.Tokens)


async def create_room(channel: Channel, token: str, name: str) -> int:
    m = w.wire()
    chat = await unary(channel, w.CREATE_ROOM, m.CreateRoomRequest(name=name), m.Chat, token)
    return int(chat.id)


async def invite_to_room(channel: Channel, token: str, chat_id: int, user_id: int) -> int:
    m = w.wire()
    request = m.RoomInviteRequest(chat_id=chat_id, user_id=user_id)
    invite = await unary(channel, w.INVITE_TO_ROOM, request, m.Invite, token)
    return int(invite.id)


async def accept_invite(channel: Channel, token: str, invite_id: int) -> None:
    m = w.wire()
    request = m.AnswerInviteRequest(invite_id=invite_id, accept=True)
    await unary(channel, w.ANSWER_INVITE, request, m.InviteAnswer, token)


async def leave_chat(channel: Channel, token: str, chat_id: int) -> None:
    m = w.wire()
    await unary(channel, w.LEAVE_CHAT, m.ChatRequest(chat_id=chat_id), m.Empty, token)


async def get_messages(
    channel: Channel, token: str, chat_id: int, before_id: int, limit: int
) -> Any:
    m = w.wire()
    request = m.GetMessagesRequest(chat_id=chat_id, before_id=before_id, limit=limit)
    return await unary(channel, w.GET_MESSAGES, request, m.MessagePage, token)


async def search_messages(channel: Channel, token: str, query: str, limit: int) -> Any:
    m = w.wire()
    request = m.SearchMessagesRequest(query=query, limit=limit)
    return await unary(channel, w.SEARCH_MESSAGES, request, m.SearchResults, token)
