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

from crab.core.domain.models import Chat, Invite, InviteAnswer, Message, User

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


# The commands stored under a request id (sends have their client message id).
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
)
Command = SendMessage | Requested
