"""Sending a message: check it, rate-limit it, hand it to the worker, and
return only once it is stored."""

from __future__ import annotations

from crab.config import Limits
from crab.core.broker.base import Broker
from crab.core.domain import commands as cmd
from crab.core.domain.models import Caller, Message
from crab.core.domain.validation import check_client_message_id, check_message_text
from crab.core.services.rate_limit import RateLimiter
from crab.errors import InvalidArgument


class Messages:
    def __init__(self, broker: Broker, limits: Limits) -> None:
        self._broker = broker
        self._limits = limits
        self._limiter = RateLimiter(limits.send_rate, limits.send_burst)

    def check(
        self, caller: Caller, chat_id: int, client_message_id: str, text: str
    ) -> cmd.SendMessage:
        """Everything that can be refused without the database, at once."""
        if chat_id <= 0:
            raise InvalidArgument("chat_id must be set")
        check_client_message_id(client_message_id)
        check_message_text(text, self._limits.max_message_chars)
        self._limiter.take(caller.user_id)
        return cmd.SendMessage(caller.user_id, chat_id, client_message_id, text)

    async def store(self, command: cmd.SendMessage) -> Message:
        message: Message = await self._broker.request(command)
        return message
