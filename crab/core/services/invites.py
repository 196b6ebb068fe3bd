"""Invites to rooms and to personal conversations, and answering them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from crab.core.broker.base import Broker
from crab.core.domain import commands as cmd
from crab.core.domain.models import Caller, Invite, InviteAnswer
from crab.core.storage import invites


class Invites:
    def __init__(self, engine: AsyncEngine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    async def pending(self, caller: Caller) -> tuple[list[Invite], list[Invite]]:
        """(received, sent)"""
        async with self._engine.connect() as conn:
            return await invites.received(conn, caller.user_id), await invites.sent(
                conn, caller.user_id
            )

    async def to_room(self, caller: Caller, chat_id: int, user_id: int) -> Invite:
        invite: Invite = await self._broker.request(
            cmd.InviteToRoom(inviter_id=caller.user_id, chat_id=chat_id, invitee_id=user_id)
        )
        return invite

    async def to_direct(self, caller: Caller, user_id: int) -> Invite:
        invite: Invite = await self._broker.request(
            cmd.InviteToDirect(inviter_id=caller.user_id, invitee_id=user_id)
        )
        return invite

    async def answer(self, caller: Caller, invite_id: int, accept: bool) -> InviteAnswer:
        answer: InviteAnswer = await self._broker.request(
            cmd.AnswerInvite(user_id=caller.user_id, invite_id=invite_id, accept=accept)
        )
        return answer
