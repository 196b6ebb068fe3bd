"""What a messenger is made of. Plain data, no I/O, no gRPC."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ChatKind(enum.IntEnum):
    ROOM = 1
    DIRECT = 2


class PresenceState(enum.IntEnum):
    """As on the wire (crab.proto's PresenceState): the smaller, the more
    present (so a user's state over several sessions is the min)."""

    ONLINE = 1
    AWAY = 2
    OFFLINE = 3


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
    topic: str = ""
    owner_id: int = 0  # rooms: the creator (rename, topic, remove members)
    last_change_seq: int = 0  # docs/conversation.md


@dataclass(frozen=True, slots=True)
class ReplyQuote:
    """A one-line look at the message replied to, as it is now."""

    message_id: int
    sender: User
    text_start: str  # "" when deleted
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    user_ids: tuple[int, ...]  # who reacted with it, in order


@dataclass(frozen=True, slots=True)
class Message:
    chat_id: int
    id: int  # gap-free sequence within the chat: 1, 2, 3, ...
    sender: User
    text: str
    sent_at: datetime
    client_message_id: str
    reply_to: ReplyQuote | None = None
    edited_at: datetime | None = None
    deleted: bool = False  # a tombstone: text is ""
    reactions: tuple[Reaction, ...] = ()
    mention_user_ids: tuple[int, ...] = ()
    mentions_room: bool = False
    change_seq: int = 0  # 0: never changed; docs/conversation.md

    @property
    def call_note(self) -> bool:
        """A line the server wrote when a call ended (docs/calls.md): its
        client message id is CALL_NOTE_PREFIX + the call id, a prefix no
        client may use."""
        return self.client_message_id.startswith(CALL_NOTE_PREFIX)


CALL_NOTE_PREFIX = "call:"


@dataclass(frozen=True, slots=True)
class ChatSummary:
    chat: Chat
    last_message: Message | None
    unread_count: int
    last_read_id: int
    mention_count: int = 0


@dataclass(frozen=True, slots=True)
class ReadPosition:
    """The newest message id a member has read in a chat."""

    user_id: int
    last_read_id: int


@dataclass(frozen=True, slots=True)
class Presence:
    """Online, away or offline; `last_seen_at` only while offline (None if
    never seen)."""

    user_id: int
    state: PresenceState
    last_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChatDetails:
    """One chat as a member sees it: who is in it, present, and read where."""

    chat: Chat
    members: list[User]
    presence: list[Presence]  # one per member, in the same order
    read_positions: list[ReadPosition]


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


class CallStatus(enum.IntEnum):
    """As on the wire (crab.proto's CallStatus)."""

    RINGING = 1  # only the caller is in it
    ACTIVE = 2  # someone answered
    ENDED = 3


class CallMemberState(enum.IntEnum):
    RINGING = 1
    JOINED = 2
    DECLINED = 3
    LEFT = 4
    MISSED = 5


@dataclass(frozen=True, slots=True)
class CallMember:
    user: User
    state: CallMemberState
    session_id: int = 0  # the one session of theirs in the call (JOINED)
    joined_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Call:
    id: str
    chat_id: int
    started_by: User
    video: bool
    status: CallStatus
    members: tuple[CallMember, ...]
    started_at: datetime
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = ""
    sfu_room: int = 0  # 0: a mesh; else the SFU room its media goes through
    sfu_pin: str = ""

    def member(self, user_id: int) -> CallMember | None:
        return next((m for m in self.members if m.user.id == user_id), None)

    def joined(self) -> list[CallMember]:
        return [m for m in self.members if m.state == CallMemberState.JOINED]
