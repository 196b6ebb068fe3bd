"""Invites to rooms and to personal conversations, and answering them."""

from __future__ import annotations

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.domain import commands as cmd
from crab.core.domain.models import Caller, Invite, InviteAnswer
from crab.core.services.rate_limit import RateLimiter, take_all
from crab.core.services.request_ids import request_id
from crab.core.storage import invites
from crab.core.storage.database import Database


class Invites:
    def __init__(self, database: Database, broker: Broker, limits: Limits) -> None:
        self._database = database
        self._broker = broker
        # Room and personal invites count together: each lands in someone's list.
        self._by_user = RateLimiter.of(limits.invites_per_user, "invites sent by you")
        self._by_address = RateLimiter.of(
            limits.invites_per_address, "invites sent from your address"
        )

    def _count(self, caller: Caller, source: str) -> None:
        take_all((self._by_user, caller.user_id), (self._by_address, source))

    async def pending(self, caller: Caller) -> tuple[list[Invite], list[Invite]]:
        """(received, sent)"""
        return await self._database.read(invites.received_and_sent, caller.user_id)

    # `request`: the client's request id; a retry with it gets the first answer.
    # `source`: the caller's address (rate limits per user and per address).

    async def to_room(
        self, caller: Caller, chat_id: int, user_id: int, request: str = "", source: str = ""
    ) -> Invite:
        command = cmd.InviteToRoom(caller.user_id, chat_id, user_id, request_id(request))
        self._count(caller, source)
        invite: Invite = await self._broker.request(command)
        return invite

    async def to_direct(
        self, caller: Caller, user_id: int, request: str = "", source: str = ""
    ) -> Invite:
        command = cmd.InviteToDirect(caller.user_id, user_id, request_id(request))
        self._count(caller, source)
        invite: Invite = await self._broker.request(command)
        return invite

    async def answer(
        self, caller: Caller, invite_id: int, accept: bool, request: str = ""
    ) -> InviteAnswer:
        command = cmd.AnswerInvite(caller.user_id, invite_id, accept, request_id(request))
        answer: InviteAnswer = await self._broker.request(command)
        return answer
