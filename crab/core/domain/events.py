"""Events a worker publishes after a commit, on topics every server process
can bind: `chat.<id>` for what members of a chat see, `user.<id>` for what
one person sees (on all their devices)."""

from __future__ import annotations

from dataclasses import dataclass

from crab.core.domain.models import Call, Chat, Invite, InviteAnswer, Message, Presence, User

# Where each server process tells the others which of its users are online
# (PresenceBeat); every process binds it.
PRESENCE_TOPIC = "presence"


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


@dataclass(frozen=True, slots=True)
class CallChanged:
    """On `chat.<id>`: a call of the chat as it is now (rung, answered,
    declined, left, ended). Every member's sessions get it."""

    call: Call


@dataclass(frozen=True, slots=True)
class CallSignalled:
    """On `user.<id>` of `to_user_id`: an SDP for the one session of theirs
    in the call. Never stored; not dropped under load like typing (a call
    would not connect without it)."""

    call_id: str
    chat_id: int
    sender: User
    to_user_id: int
    to_session_id: int
    sdp_type: str
    sdp: str


# ---- ephemeral: never stored, coalesced, dropped first under load ----------


@dataclass(frozen=True, slots=True)
class ReadMoved:
    """On `chat.<id>`: a member's read position moved forward."""

    chat_id: int
    user_id: int
    last_read_id: int


@dataclass(frozen=True, slots=True)
class Typing:
    """On `chat.<id>`: `user` is typing there (for a few seconds)."""

    chat_id: int
    user: User


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """On `user.<id>` of each person who shares a chat with the user."""

    presence: Presence


@dataclass(frozen=True, slots=True)
class UserState:
    user_id: int
    away: bool


@dataclass(frozen=True, slots=True)
class PresenceBeat:
    """On PRESENCE_TOPIC: the users with a live session on one server
    process. `full`: every one of them (the others are gone from it);
    otherwise only those that changed (`gone`: no session left there).
    `ask`: a process that just started wants everyone's full beat."""

    replica: str
    users: tuple[UserState, ...] = ()
    gone: tuple[int, ...] = ()
    full: bool = False
    ask: bool = False


EPHEMERAL = (ReadMoved, Typing, PresenceChanged)

Event = (
    MessageCreated
    | MessageChanged
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
    | CallChanged
    | CallSignalled
    | ReadMoved
    | Typing
    | PresenceChanged
    | PresenceBeat
)
# What a handler will publish once its transaction commits: (topic, event).
Published = list[tuple[str, Event]]
