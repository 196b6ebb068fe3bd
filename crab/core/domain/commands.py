"""Writes others must see travel as commands through the broker to a
worker. Each carries enough to be handled idempotently on redelivery."""

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


@dataclass(frozen=True, slots=True)
class LeaveChat:
    user_id: int
    chat_id: int


@dataclass(frozen=True, slots=True)
class InviteToRoom:
    inviter_id: int
    chat_id: int
    invitee_id: int


@dataclass(frozen=True, slots=True)
class InviteToDirect:
    inviter_id: int
    invitee_id: int


@dataclass(frozen=True, slots=True)
class AnswerInvite:
    user_id: int
    invite_id: int
    accept: bool


Command = SendMessage | CreateRoom | LeaveChat | InviteToRoom | InviteToDirect | AnswerInvite
