"""What a messenger is made of. Plain data, no I/O, no gRPC."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ChatKind(enum.IntEnum):
    ROOM = 1
    DIRECT = 2


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    kind: ChatKind
    name: str  # room name; for a direct chat, filled per viewer by the reader
    created_at: datetime
    last_message_id: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    chat_id: int
    id: int  # gap-free sequence within the chat: 1, 2, 3, ...
    sender: User
    text: str
    sent_at: datetime
    client_message_id: str


@dataclass(frozen=True, slots=True)
class ChatSummary:
    chat: Chat
    last_message: Message | None
    unread_count: int
    last_read_id: int


@dataclass(frozen=True, slots=True)
class Invite:
    id: int
    inviter: User
    invitee: User
    chat: Chat | None  # None: an invite to a personal conversation
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InviteAnswer:
    invite: Invite
    accepted: bool
    chat: Chat | None  # the chat joined, when accepted


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]  # newest first
    has_more: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is making a call: set by the auth listener for each request."""

    user_id: int
    session_id: int
