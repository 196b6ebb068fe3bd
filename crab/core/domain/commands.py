"""Writes others must see travel as commands through the broker to a
worker. Each carries enough to be handled idempotently on redelivery: a
send its client message id, every other command a request id (the
client's, or one the server made for the call), under which the worker
stores the first result.

Each command names its result: `CreateRoom(Returns[Chat])` is answered
with a Chat, so `Broker.request(CreateRoom(...))` is typed `Chat` and mypy
checks every caller and handler against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from crab.core.domain.models import Call, Chat, Invite, InviteAnswer, Message, User

R = TypeVar("R", covariant=True)


class Returns(Generic[R]):
    """A command answered with an `R` (a marker: no fields, no behaviour)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SendMessage(Returns[Message]):
    sender_id: int
    chat_id: int
    client_message_id: str
    text: str
    reply_to_id: int = 0  # an earlier message of the same chat; 0: not a reply


@dataclass(frozen=True, slots=True)
class CreateRoom(Returns[Chat]):
    creator_id: int
    name: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class LeaveChat(Returns[None]):
    user_id: int
    chat_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class InviteToRoom(Returns[Invite]):
    inviter_id: int
    chat_id: int
    invitee_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class InviteToDirect(Returns[Invite]):
    inviter_id: int
    invitee_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AnswerInvite(Returns[InviteAnswer]):
    user_id: int
    invite_id: int
    accept: bool
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class RenameRoom(Returns[Chat]):
    user_id: int  # who asks: the owner, or refused
    chat_id: int
    name: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SetTopic(Returns[Chat]):
    user_id: int
    chat_id: int
    topic: str
    request_id: str = ""


# Changes to a message (docs/conversation.md): each answers with the message
# as it is after the change.


@dataclass(frozen=True, slots=True)
class EditMessage(Returns[Message]):
    user_id: int
    chat_id: int
    message_id: int
    text: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class RemoveMember(Returns[None]):
    user_id: int  # the owner
    chat_id: int
    member_id: int  # who is removed
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class SetDisplayName(Returns[User]):
    user_id: int
    display_name: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class DeleteMessage(Returns[Message]):
    user_id: int
    chat_id: int
    message_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class React(Returns[Message]):
    """A toggle: adds the user's reaction with this emoji, or removes it."""

    user_id: int
    chat_id: int
    message_id: int
    emoji: str
    request_id: str = ""


# The commands stored under a request id (sends have their client message id).
@dataclass(frozen=True, slots=True)
class StartCall(Returns[Call]):
    """Rings the chat's other members; joins the call already going on there."""

    user_id: int
    session_id: int
    chat_id: int
    call_id: str  # made by the server, so a retried command makes one call
    video: bool
    mesh_max: int  # beyond this many members, the SFU (or refused without one)
    sfu_room: int = 0
    sfu_pin: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AnswerCall(Returns[Call]):
    """Join (accept) or decline."""

    user_id: int
    session_id: int
    chat_id: int
    call_id: str
    accept: bool
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class LeaveCall(Returns[Call]):
    """Hang up; `session_id` 0: whichever session of the user is in it
    (a drop found by the server names the session that dropped)."""

    user_id: int
    chat_id: int
    call_id: str
    session_id: int = 0
    reason: str = "hung up"
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class StopRinging(Returns[Call]):
    """The ring timed out: who has not answered missed it."""

    chat_id: int
    call_id: str
    request_id: str = ""


Requested = (
    CreateRoom
    | LeaveChat
    | InviteToRoom
    | InviteToDirect
    | AnswerInvite
    | RenameRoom
    | SetTopic
    | RemoveMember
    | SetDisplayName
    | EditMessage
    | DeleteMessage
    | React
    | StartCall
    | AnswerCall
    | LeaveCall
    | StopRinging
)
Command = SendMessage | Requested
