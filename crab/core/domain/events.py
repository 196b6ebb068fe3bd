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
class MemberRemoved:
    """On `chat.<id>`: the owner removed a member (who gets ChatLeft)."""

    chat_id: int
    user: User
    by: User


@dataclass(frozen=True, slots=True)
class ChatUpdated:
    """On `chat.<id>`: renamed, or a new topic; the chat as it is now."""

    chat: Chat


@dataclass(frozen=True, slots=True)
class UserUpdated:
    """On `user.<id>` of each person who shares a chat with `user` (and
    their own): a new display name."""

    user: User


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """On `user.<id>`: sign-out; open streams of these sessions end."""

    user_id: int
    session_id: int | None  # None: every session of the user
    # With session_id None: this one session goes on (a password change).
    keep_session_id: int = 0


Event = (
    MessageCreated
    | InviteReceived
    | InviteAnswered
    | ChatJoined
    | ChatLeft
    | MemberJoined
    | MemberLeft
    | MemberRemoved
    | ChatUpdated
    | UserUpdated
    | SessionEnded
)
# What a handler will publish once its transaction commits: (topic, event).
Published = list[tuple[str, Event]]
