"""Typing notices: "bob is typing" for the other members of a chat.

Ephemeral: never stored, published on the chat's topic, dropped first when
a stream falls behind (live.py). A session may say it is typing in a chat
once per `interval` seconds; more often, or in a chat it is not a member
of, is dropped without an answer (a stranger learns nothing, and a client
has nothing to retry)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from crab.core.broker.base import Broker
from crab.core.domain import events as ev
from crab.core.domain.models import User

log = logging.getLogger(__name__)


class TypingGate:
    """One per session: when it last said it was typing, per chat."""

    __slots__ = ("_clock", "_interval", "_said_at")

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._said_at: dict[int, float] = {}  # bounded by the session's chats

    def take(self, chat_id: int, member_of: set[int]) -> bool:
        if chat_id not in member_of:
            return False
        now = self._clock()
        last = self._said_at.get(chat_id)
        if last is not None and now - last < self._interval:
            return False
        if len(self._said_at) > len(member_of):  # chats left meanwhile
            self._said_at = {c: t for c, t in self._said_at.items() if c in member_of}
        self._said_at[chat_id] = now
        return True


async def publish_typing(broker: Broker, chat_id: int, user: User) -> None:
    try:
        await broker.publish(ev.chat_topic(chat_id), ev.Typing(chat_id, user))
    except Exception:
        log.debug("typing notice lost", exc_info=True)  # ephemeral: never retried
