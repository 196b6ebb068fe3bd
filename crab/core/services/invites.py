"""Invites to rooms and to personal conversations, and answering them.

The request side (`Invites`: rate limits, then a command to the worker)
and the rules the worker applies to those commands (`handle_*`: sync
functions of its connection, run in its transaction) are both here: no
inviting yourself, a personal conversation has exactly two people, one
pending invite per room and person (or per pair), only the invitee answers."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import Caller, Chat, ChatKind, Invite, InviteAnswer
from crab.core.services.rate_limit import RateLimiter, take_all
from crab.core.services.request_ids import request_id
from crab.core.storage import chats, invites, users
from crab.core.storage.database import Database
from crab.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied


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
        return await self._broker.request(command)

    async def to_direct(
        self, caller: Caller, user_id: int, request: str = "", source: str = ""
    ) -> Invite:
        command = cmd.InviteToDirect(caller.user_id, user_id, request_id(request))
        self._count(caller, source)
        return await self._broker.request(command)

    async def answer(
        self, caller: Caller, invite_id: int, accept: bool, request: str = ""
    ) -> InviteAnswer:
        command = cmd.AnswerInvite(caller.user_id, invite_id, accept, request_id(request))
        return await self._broker.request(command)


# ---- the worker's handlers ---------------------------------------------------


def _invitee(conn: Connection, inviter_id: int, invitee_id: int) -> None:
    if invitee_id == inviter_id:
        raise FailedPrecondition("you cannot invite yourself")
    if users.by_id(conn, invitee_id) is None or users.is_deleted(conn, invitee_id):
        raise NotFound(f"user {invitee_id} not found")


def handle_invite_to_room(conn: Connection, c: cmd.InviteToRoom, out: ev.Published) -> Invite:
    chat = chats.get(conn, c.chat_id)
    if chat is None or not chats.is_member(conn, c.chat_id, c.inviter_id):
        raise NotFound(f"chat {c.chat_id} not found")
    if chat.kind != ChatKind.ROOM:
        raise FailedPrecondition("a personal conversation has exactly two people; create a room")
    _invitee(conn, c.inviter_id, c.invitee_id)
    if chats.is_member(conn, c.chat_id, c.invitee_id):
        raise AlreadyExists("that user is already a member of this room")
    key = invites.room_key(chat.id, c.invitee_id)
    taken = f"{_name(conn, c.invitee_id)} already has a pending invite to #{chat.name}"
    return _store_invite(conn, c.inviter_id, c.invitee_id, chat.id, key, taken, out)


def handle_invite_to_direct(conn: Connection, c: cmd.InviteToDirect, out: ev.Published) -> Invite:
    _invitee(conn, c.inviter_id, c.invitee_id)
    existing = chats.direct_between(conn, c.inviter_id, c.invitee_id)
    if existing is not None and set(chats.member_ids(conn, existing.id)) == {
        c.inviter_id,
        c.invitee_id,
    }:
        raise AlreadyExists("you already have a personal conversation with that user")
    key = invites.direct_key(c.inviter_id, c.invitee_id)
    return _store_invite(conn, c.inviter_id, c.invitee_id, None, key, _direct_taken(conn, c), out)


def _name(conn: Connection, user_id: int) -> str:
    user = users.by_id(conn, user_id)
    return user.username if user else f"user {user_id}"


def _direct_taken(conn: Connection, c: cmd.InviteToDirect) -> str:
    """What to say when the pair already has a pending invite: either
    way round (one pending invite per pair)."""
    name = _name(conn, c.invitee_id)
    theirs = any(
        i.chat is None and i.inviter.id == c.invitee_id
        for i in invites.received(conn, c.inviter_id)
    )
    if theirs:
        return f"{name} has already invited you to a personal conversation: /accept it"
    return f"{name} already has a pending invite to a personal conversation with you"


def _store_invite(
    conn: Connection,
    inviter_id: int,
    invitee_id: int,
    chat_id: int | None,
    key: str,
    taken: str,
    out: ev.Published,
) -> Invite:
    """`taken`: the error if the key already has a pending invite."""
    if invites.key_taken(conn, key):
        raise AlreadyExists(taken)
    invite_id = invites.insert(conn, inviter_id, invitee_id, chat_id, key, now())
    invite = invites.get(conn, invite_id)
    assert invite is not None
    out.append((ev.user_topic(invitee_id), ev.InviteReceived(invite)))
    return invite


def handle_answer(conn: Connection, c: cmd.AnswerInvite, out: ev.Published) -> InviteAnswer:
    invite = invites.get(conn, c.invite_id)
    if invite is None or c.user_id not in (invite.invitee.id, invite.inviter.id):
        raise NotFound(f"invite {c.invite_id} not found")
    if invite.invitee.id != c.user_id:
        raise PermissionDenied("only the invited user can answer an invite")
    invites.delete(conn, invite.id)
    chat: Chat | None = None
    if c.accept:
        chat = _join(conn, invite, out)
    answer = InviteAnswer(invite=invite, accepted=c.accept, chat=chat)
    for user_id in {invite.inviter.id, invite.invitee.id}:
        out.append((ev.user_topic(user_id), ev.InviteAnswered(answer)))
    return answer


def _join(conn: Connection, invite: Invite, out: ev.Published) -> Chat:
    """Accepting: the invitee (and for a direct chat, both) become members."""
    when = now()
    if invite.chat is not None:
        chat = chats.get(conn, invite.chat.id)
        if chat is None:
            raise NotFound("that room no longer exists")
        joining = [invite.invitee]
    else:
        pair = (invite.inviter.id, invite.invitee.id)
        found = chats.direct_between(conn, *pair)
        chat = found or chats.create(
            conn, ChatKind.DIRECT, "", invite.inviter.id, when, chats.direct_key(*pair)
        )
        joining = [invite.inviter, invite.invitee]
    newcomers = [u for u in joining if not chats.is_member(conn, chat.id, u.id)]
    for user in newcomers:
        chats.add_member(conn, chat.id, user.id, when)
    for user in newcomers:
        view = chats.view(conn, chat, user.id)
        out.append((ev.user_topic(user.id), ev.ChatJoined(user.id, view)))
        out.append((ev.chat_topic(chat.id), ev.MemberJoined(chat.id, user)))
    return chats.view(conn, chat, invite.invitee.id)
