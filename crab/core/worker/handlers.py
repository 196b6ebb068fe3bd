"""The worker owns every write others must see: it stores, answers the
requester, then publishes events. Handlers are idempotent, because a
command whose worker died before acknowledging is delivered again."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crab.core.broker.base import Broker, Outcome
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import Chat, ChatKind, Invite, InviteAnswer, Message
from crab.core.storage import chats, invites, messages, users
from crab.core.storage.engine import transaction
from crab.errors import AlreadyExists, CrabError, FailedPrecondition, NotFound, PermissionDenied

log = logging.getLogger(__name__)

Published = list[tuple[str, ev.Event]]


class Worker:
    def __init__(self, engine: AsyncEngine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    async def start(self, consumers: int) -> None:
        for _ in range(consumers):
            await self._broker.consume(self.handle)

    async def handle(self, batch: Sequence[cmd.Command]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        sends = [(i, c) for i, c in enumerate(batch) if isinstance(c, cmd.SendMessage)]
        if sends:
            for (i, _), outcome in zip(sends, await self._send_group(sends), strict=True):
                outcomes[i] = outcome
        for i, command in enumerate(batch):
            if outcomes[i] is None:
                outcomes[i] = await self._one(command)
        return [o for o in outcomes if o is not None]

    async def _one(self, command: cmd.Command, retry: bool = True) -> Outcome:
        published: Published = []
        try:
            async with transaction(self._engine) as conn:
                result = await self._dispatch(conn, command, published)
        except CrabError as error:
            return Outcome(error=error)
        except IntegrityError:
            if not retry:
                raise
            # A competing worker committed the same unique key (a pending
            # invite, a direct chat, a client message id) between our check
            # and our insert: once more, the check sees it and answers.
            return await self._one(command, retry=False)
        await self._publish(published)
        return Outcome(result=result)

    async def _dispatch(
        self, conn: AsyncConnection, command: cmd.Command, out: Published
    ) -> object:
        match command:
            case cmd.SendMessage():
                return await self._send_one(conn, command, out)
            case cmd.CreateRoom():
                return await self._create_room(conn, command, out)
            case cmd.LeaveChat():
                await self._leave(conn, command, out)
                return None
            case cmd.InviteToRoom():
                return await self._invite_to_room(conn, command, out)
            case cmd.InviteToDirect():
                return await self._invite_to_direct(conn, command, out)
            case cmd.AnswerInvite():
                return await self._answer(conn, command, out)
        raise TypeError(f"unknown command {command!r}")

    async def _publish(self, published: Published) -> None:
        for topic, event in published:
            await self._broker.publish(topic, event)

    # ---- messages ------------------------------------------------------

    async def _send_group(self, sends: list[tuple[int, cmd.SendMessage]]) -> list[Outcome]:
        """All waiting sends in one transaction: one commit for the lot,
        then each is answered. If the group fails, each is tried alone."""
        published: Published = []
        try:
            async with transaction(self._engine) as conn:
                outcomes = await self._store_sends(conn, [c for _, c in sends], published)
        except IntegrityError:
            log.info("group of %d sends conflicted; storing one by one", len(sends))
            return [await self._one(c) for _, c in sends]
        await self._publish(published)
        return outcomes

    async def _send_one(
        self, conn: AsyncConnection, command: cmd.SendMessage, out: Published
    ) -> Message:
        (outcome,) = await self._store_sends(conn, [command], out)
        if outcome.error is not None:
            raise outcome.error
        assert isinstance(outcome.result, Message)
        return outcome.result

    async def _store_sends(
        self, conn: AsyncConnection, sends: Sequence[cmd.SendMessage], out: Published
    ) -> list[Outcome]:
        """A group of sends in a fixed number of statements, whatever its size:
        re-sends, memberships and senders are each looked up once for all."""
        keys = [(s.sender_id, s.client_message_id) for s in sends]
        existing = await messages.by_client_ids(conn, keys)
        member = await chats.memberships(conn, [(s.chat_id, s.sender_id) for s in sends])
        outcomes: list[Outcome | None] = [None] * len(sends)
        fresh: dict[tuple[int, str], int] = {}  # (sender, client id) -> index in sends
        by_chat: defaultdict[int, list[int]] = defaultdict(list)
        for i, (send, key) in enumerate(zip(sends, keys, strict=True)):
            if key in existing:
                outcomes[i] = Outcome(result=existing[key])  # a re-send: the first one
            elif key in fresh:
                continue  # the same send twice in one group: answered below
            elif (send.chat_id, send.sender_id) not in member:
                outcomes[i] = Outcome(error=NotFound(f"chat {send.chat_id} not found"))
            else:
                fresh[key] = i
                by_chat[send.chat_id].append(i)

        when = now()
        stored: dict[int, Message] = {}
        rows = []
        read_up_to: dict[tuple[int, int], int] = {}  # (chat, sender) -> newest id sent
        senders = await users.by_ids(conn, (sends[i].sender_id for i in fresh.values()))
        # Chats locked (by next_seqs) in id order: competing workers whose
        # batches share chats queue up instead of deadlocking on PostgreSQL.
        for chat_id in sorted(by_chat):
            indexes = by_chat[chat_id]
            first = await messages.next_seqs(conn, chat_id, len(indexes))
            for seq, i in enumerate(indexes, start=first):
                send = sends[i]
                rows.append(
                    messages.row(
                        chat_id, seq, send.sender_id, send.client_message_id, send.text, when
                    )
                )
                stored[i] = Message(
                    chat_id, seq, senders[send.sender_id], send.text, when, send.client_message_id
                )
                read_up_to[(chat_id, send.sender_id)] = seq
        await messages.insert_many(conn, rows)
        await messages.mark_senders_read(conn, read_up_to)

        for i, key in enumerate(keys):
            if outcomes[i] is None:
                outcomes[i] = Outcome(result=stored[fresh[key]])
        # A re-send's message is published again: if the first attempt's worker
        # died between commit and publish, live streams get it now, not only
        # when the chat's next message reveals the gap (streams skip ids sent).
        again = {(m.chat_id, m.id): m for m in existing.values()}
        fresh_messages = {(m.chat_id, m.id): m for m in stored.values()}
        for position in sorted(again.keys() | fresh_messages.keys()):
            message = fresh_messages.get(position) or again[position]
            out.append((ev.chat_topic(message.chat_id), ev.MessageCreated(message)))
        return [o for o in outcomes if o is not None]

    # ---- chats -----------------------------------------------------------

    async def _create_room(self, conn: AsyncConnection, c: cmd.CreateRoom, out: Published) -> Chat:
        chat = await chats.create(conn, ChatKind.ROOM, c.name, c.creator_id, now())
        await chats.add_member(conn, chat.id, c.creator_id, now())
        out.append((ev.user_topic(c.creator_id), ev.ChatJoined(c.creator_id, chat)))
        return chat

    async def _leave(self, conn: AsyncConnection, c: cmd.LeaveChat, out: Published) -> None:
        if not await chats.remove_member(conn, c.chat_id, c.user_id):
            raise NotFound(f"chat {c.chat_id} not found")
        user = await users.by_id(conn, c.user_id)
        assert user is not None
        out.append((ev.user_topic(c.user_id), ev.ChatLeft(c.user_id, c.chat_id)))
        out.append((ev.chat_topic(c.chat_id), ev.MemberLeft(c.chat_id, user)))

    # ---- invites ---------------------------------------------------------

    async def _invitee(self, conn: AsyncConnection, inviter_id: int, invitee_id: int) -> None:
        if invitee_id == inviter_id:
            raise FailedPrecondition("you cannot invite yourself")
        if await users.by_id(conn, invitee_id) is None:
            raise NotFound(f"user {invitee_id} not found")

    async def _invite_to_room(
        self, conn: AsyncConnection, c: cmd.InviteToRoom, out: Published
    ) -> Invite:
        chat = await chats.get(conn, c.chat_id)
        if chat is None or not await chats.is_member(conn, c.chat_id, c.inviter_id):
            raise NotFound(f"chat {c.chat_id} not found")
        if chat.kind != ChatKind.ROOM:
            raise FailedPrecondition(
                "a personal conversation has exactly two people; create a room"
            )
        await self._invitee(conn, c.inviter_id, c.invitee_id)
        if await chats.is_member(conn, c.chat_id, c.invitee_id):
            raise AlreadyExists("that user is already a member of this room")
        return await self._store_invite(
            conn, c.inviter_id, c.invitee_id, chat.id, invites.room_key(chat.id, c.invitee_id), out
        )

    async def _invite_to_direct(
        self, conn: AsyncConnection, c: cmd.InviteToDirect, out: Published
    ) -> Invite:
        await self._invitee(conn, c.inviter_id, c.invitee_id)
        existing = await chats.direct_between(conn, c.inviter_id, c.invitee_id)
        if existing is not None and set(await chats.member_ids(conn, existing.id)) == {
            c.inviter_id,
            c.invitee_id,
        }:
            raise AlreadyExists("you already have a personal conversation with that user")
        key = invites.direct_key(c.inviter_id, c.invitee_id)
        return await self._store_invite(conn, c.inviter_id, c.invitee_id, None, key, out)

    async def _store_invite(
        self,
        conn: AsyncConnection,
        inviter_id: int,
        invitee_id: int,
        chat_id: int | None,
        key: str,
        out: Published,
    ) -> Invite:
        if await invites.key_taken(conn, key):
            raise AlreadyExists("there is already a pending invite for that")
        invite_id = await invites.insert(conn, inviter_id, invitee_id, chat_id, key, now())
        invite = await invites.get(conn, invite_id)
        assert invite is not None
        out.append((ev.user_topic(invitee_id), ev.InviteReceived(invite)))
        return invite

    async def _answer(
        self, conn: AsyncConnection, c: cmd.AnswerInvite, out: Published
    ) -> InviteAnswer:
        invite = await invites.get(conn, c.invite_id)
        if invite is None or c.user_id not in (invite.invitee.id, invite.inviter.id):
            raise NotFound(f"invite {c.invite_id} not found")
        if invite.invitee.id != c.user_id:
            raise PermissionDenied("only the invited user can answer an invite")
        await invites.delete(conn, invite.id)
        chat: Chat | None = None
        if c.accept:
            chat = await self._join(conn, invite, out)
        answer = InviteAnswer(invite=invite, accepted=c.accept, chat=chat)
        for user_id in {invite.inviter.id, invite.invitee.id}:
            out.append((ev.user_topic(user_id), ev.InviteAnswered(answer)))
        return answer

    async def _join(self, conn: AsyncConnection, invite: Invite, out: Published) -> Chat:
        """Accepting: the invitee (and for a direct chat, both) become members."""
        when = now()
        if invite.chat is not None:
            chat = await chats.get(conn, invite.chat.id)
            if chat is None:
                raise NotFound("that room no longer exists")
            joining = [invite.invitee]
        else:
            pair = (invite.inviter.id, invite.invitee.id)
            found = await chats.direct_between(conn, *pair)
            chat = found or await chats.create(
                conn, ChatKind.DIRECT, "", invite.inviter.id, when, chats.direct_key(*pair)
            )
            joining = [invite.inviter, invite.invitee]
        newcomers = [u for u in joining if not await chats.is_member(conn, chat.id, u.id)]
        for user in newcomers:
            await chats.add_member(conn, chat.id, user.id, when)
        for user in newcomers:
            view = await chats.view(conn, chat, user.id)
            out.append((ev.user_topic(user.id), ev.ChatJoined(user.id, view)))
            out.append((ev.chat_topic(chat.id), ev.MemberJoined(chat.id, user)))
        return await chats.view(conn, chat, invite.invitee.id)
