"""Events a worker publishes after a commit, on topics every server process
can bind: `chat.<id>` for what members of a chat see, `user.<id>` for what
one person sees (on all their devices)."""

from __future__ import annotations

from dataclasses import dataclass

from crab.core.domain.models import Chat, Invite, InviteAnswer, Message, User


def chat_topic(chat_id: int) -> str:
    return f"chat.{chat_id}"


def user_topic(user_id: int) -> str:
    return f"user.{user_id}"


@dataclass(frozen=True, slots=True)
class MessageCreated:
    message: Message


@dataclass(frozen=True, slots=True)
class MessageChanged:
    """On `chat.<id>`: an edit, a delete or a reaction; the message as it is
    now, with its change_seq (docs/conversation.md)."""

    message: Message


@dataclass(frozen=True, slots=True)
class InviteReceived:
    invite: Invite


@dataclass(frozen=True, slots=True)
class InviteAnswered:
    answer: InviteAnswer


@dataclass(frozen=True, slots=True)
class ChatJoined:
    """On `user.<id>`: this user is now a member; streams start delivering."""

    user_id: int
    chat: Chat


@dataclass(frozen=True, slots=True)
class ChatLeft:
    """On `user.<id>`: this user left; streams stop delivering at once."""

    user_id: int
    chat_id: int


@dataclass(frozen=True, slots=True)
class MemberJoined:
    chat_id: int
    user: User


@dataclass(frozen=True, slots=True)
class MemberLeft:
    chat_id: int
    user: User


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """On `user.<id>`: sign-out; open streams of these sessions end."""

    user_id: int
    session_id: int | None  # None: every session of the user


Event = (
    MessageCreated
    | MessageChanged
    | InviteReceived
    | InviteAnswered
    | ChatJoined
    | ChatLeft
    | MemberJoined
    | MemberLeft
    | SessionEnded
)
# What a handler will publish once its transaction commits: (topic, event).
Published = list[tuple[str, Event]]
