"""Typing notices: "bob is typing" for the other members of a chat.

Ephemeral: never stored, published on the chat's topic, dropped first when
a stream falls behind (live.py). A session may say it is typing in a chat
once per interval (its `typing` limiter in live.py, keyed by chat); more
often, or in a chat it is not a member of, is dropped without an answer (a
stranger learns nothing, and a client has nothing to retry)."""

from __future__ import annotations

import logging

from crab.core.broker.base import Broker
from crab.core.domain import events as ev
from crab.core.domain.models import User

log = logging.getLogger(__name__)


async def publish_typing(broker: Broker, chat_id: int, user: User) -> None:
    try:
        await broker.publish(ev.chat_topic(chat_id), ev.Typing(chat_id, user))
    except Exception:
        log.debug("typing notice lost", exc_info=True)  # ephemeral: never retried
