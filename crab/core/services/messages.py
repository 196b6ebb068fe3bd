"""Sending a message: check it, rate-limit it, hand it to the worker, and
return only once it is stored.

The worker stores the sends it has waiting as one group (`store_sends`, a
sync function of its connection, run in one transaction): one call to the
database for the whole group, in a fixed number of statements whatever
its size (re-sends, memberships and senders each looked up once; the
messages replied to too, and only when a send in the group replies). Only a
member may send; a re-send (same sender, same client message id) is
answered with the message stored the first time; ids are gap-free per chat;
a reply names an existing message of the same chat (else INVALID_ARGUMENT);
the members a text mentions (and @room) are stored with it, at the cost
of one query for the group, and only when some text holds an '@'."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from crab.config import Limits
from crab.core.broker.base import Broker, Outcome
from crab.core.clock import now
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.mentions import Mentions, parse_mentions
from crab.core.domain.models import Caller, Message, ReplyQuote
from crab.core.domain.validation import (
    check_client_message_id,
    check_message_text,
    clamp_id,
)
from crab.core.services.rate_limit import RateLimiter
from crab.core.storage import chats, messages, users
from crab.core.storage import mentions as mention_store
from crab.errors import InvalidArgument, NotFound


class Messages:
    def __init__(self, broker: Broker, limits: Limits) -> None:
        self._broker = broker
        self._limits = limits
        self._limiter = RateLimiter(limits.send_rate, limits.send_burst)

    def check(
        self,
        caller: Caller,
        chat_id: int,
        client_message_id: str,
        text: str,
        reply_to_id: int = 0,
    ) -> cmd.SendMessage:
        """Everything that can be refused without the database, at once."""
        if chat_id <= 0:
            raise InvalidArgument("chat_id must be set")
        check_client_message_id(client_message_id)
        check_message_text(text, self._limits.max_message_chars)
        self._limiter.take(caller.user_id)
        return cmd.SendMessage(
            caller.user_id, chat_id, client_message_id, text, clamp_id(reply_to_id)
        )

    async def store(self, command: cmd.SendMessage) -> Message:
        return await self._broker.request(command)


# ---- the worker's handlers ---------------------------------------------------


@dataclass
class Stored:
    outcomes: list[Outcome]  # one per send, in order
    published: ev.Published = field(default_factory=list)


def store_sends(conn: Connection, sends: Sequence[cmd.SendMessage]) -> Stored:
    keys = [(s.sender_id, s.client_message_id) for s in sends]
    existing = messages.by_client_ids(conn, keys)
    member = chats.memberships(conn, [(s.chat_id, s.sender_id) for s in sends])
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
    quotes = _replied_to(conn, sends, fresh, by_chat, outcomes)
    parsed, named = _mentions(conn, sends, fresh)

    when = now()
    stored: dict[int, Message] = {}
    rows = []
    read_up_to: dict[tuple[int, int], int] = {}  # (chat, sender) -> newest id sent
    mentioned: list[tuple[int, int, tuple[int, ...]]] = []  # (chat, id, user ids)
    room: list[tuple[int, int]] = []  # (chat, id) of the sends that mention @room
    senders = users.by_ids(conn, (sends[i].sender_id for i in fresh.values()))
    # Chats locked (by next_seqs) in id order: competing workers whose
    # batches share chats queue up instead of deadlocking on PostgreSQL.
    for chat_id in sorted(by_chat):
        indexes = by_chat[chat_id]
        first = messages.next_seqs(conn, chat_id, len(indexes))
        for seq, i in enumerate(indexes, start=first):
            send = sends[i]
            reply_to = quotes.get((chat_id, send.reply_to_id)) if send.reply_to_id else None
            user_ids: tuple[int, ...] = ()
            said = parsed.get(i)
            if said is not None:
                user_ids = mention_store.resolve(named, chat_id, send.sender_id, said)
                if user_ids:
                    mentioned.append((chat_id, seq, user_ids))
                if said.room:
                    room.append((chat_id, seq))
            rows.append(
                messages.row(
                    chat_id,
                    seq,
                    send.sender_id,
                    send.client_message_id,
                    send.text,
                    when,
                    send.reply_to_id or None,
                )
            )
            stored[i] = Message(
                chat_id,
                seq,
                senders[send.sender_id],
                send.text,
                when,
                send.client_message_id,
                reply_to=reply_to,
                mention_user_ids=user_ids,
                mentions_room=said is not None and said.room,
            )
            read_up_to[(chat_id, send.sender_id)] = seq
    messages.insert_many(conn, rows)
    if mentioned or room:
        mention_store.store(conn, mentioned, room)
    messages.mark_senders_read(conn, read_up_to)

    result = Stored([])
    for i, key in enumerate(keys):
        outcome = outcomes[i]
        result.outcomes.append(Outcome(result=stored[fresh[key]]) if outcome is None else outcome)
    # A re-send's message is published again: if the first attempt's worker
    # died between commit and publish, live streams get it now, not only
    # when the chat's next message reveals the gap (streams skip ids sent).
    again = {(m.chat_id, m.id): m for m in existing.values()}
    fresh_messages = {(m.chat_id, m.id): m for m in stored.values()}
    for position in sorted(again.keys() | fresh_messages.keys()):
        message = fresh_messages.get(position) or again[position]
        result.published.append((ev.chat_topic(message.chat_id), ev.MessageCreated(message)))
    return result


def _replied_to(
    conn: Connection,
    sends: Sequence[cmd.SendMessage],
    fresh: dict[tuple[int, str], int],
    by_chat: defaultdict[int, list[int]],
    outcomes: list[Outcome | None],
) -> dict[tuple[int, int], ReplyQuote]:
    """Quotes of the messages the group's replies name, in one query (none
    when no send replies). A reply to a message that is not in its chat is
    refused and leaves the group (taking no id)."""
    wanted = {
        (sends[i].chat_id, sends[i].reply_to_id) for i in fresh.values() if sends[i].reply_to_id
    }
    if not wanted:
        return {}
    found = messages.quotes(conn, wanted)
    for key, i in list(fresh.items()):
        send = sends[i]
        if send.reply_to_id and (send.chat_id, send.reply_to_id) not in found:
            refused = Outcome(
                error=InvalidArgument(
                    f"reply_to_id {send.reply_to_id} is not a message of chat {send.chat_id}"
                )
            )
            for j, other in enumerate(sends):  # the same send twice in the group too
                if (other.sender_id, other.client_message_id) == key and outcomes[j] is None:
                    outcomes[j] = refused
            del fresh[key]
            by_chat[send.chat_id].remove(i)
            if not by_chat[send.chat_id]:
                del by_chat[send.chat_id]
    return found


def _mentions(
    conn: Connection, sends: Sequence[cmd.SendMessage], fresh: dict[tuple[int, str], int]
) -> tuple[dict[int, Mentions], dict[tuple[int, str], int]]:
    """The mentions each fresh send's text makes (index in sends -> them),
    and which of the names are members of their chat, in one query; no
    query, and one substring test per send, when no text holds an '@'."""
    parsed: dict[int, Mentions] = {}
    wanted: defaultdict[int, set[str]] = defaultdict(set)
    for i in fresh.values():
        text = sends[i].text
        if "@" in text and (said := parse_mentions(text)):
            parsed[i] = said
            wanted[sends[i].chat_id].update(said.usernames)
    named = mention_store.members_named(conn, {c: n for c, n in wanted.items() if n})
    return parsed, named


def handle_send(conn: Connection, command: cmd.SendMessage, out: ev.Published) -> Message:
    """One send alone (a group that failed is retried one by one)."""
    stored = store_sends(conn, [command])
    (outcome,) = stored.outcomes
    if outcome.error is not None:
        raise outcome.error
    assert isinstance(outcome.result, Message)
    out.extend(stored.published)
    return outcome.result
