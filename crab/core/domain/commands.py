"""Writes others must see travel as commands through the broker to a
worker. Each carries enough to be handled idempotently on redelivery: a
send its client message id, every other command a request id (the
client's, or one the server made for the call), under which the worker
stores the first result."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendMessage:
    sender_id: int
    chat_id: int
    client_message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CreateRoom:
    creator_id: int
    name: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class LeaveChat:
    user_id: int
    chat_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class InviteToRoom:
    inviter_id: int
    chat_id: int
    invitee_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class InviteToDirect:
    inviter_id: int
    invitee_id: int
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class AnswerInvite:
    user_id: int
    invite_id: int
    accept: bool
    request_id: str = ""


# The commands stored under a request id (sends have their client message id).
Requested = CreateRoom | LeaveChat | InviteToRoom | InviteToDirect | AnswerInvite
Command = SendMessage | CreateRoom | LeaveChat | InviteToRoom | InviteToDirect | AnswerInvite
