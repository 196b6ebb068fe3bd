"""Small steps the RabbitMQ adapter's parts share: closing steps that give
up when RabbitMQ is gone, acknowledgements on channels that may be lost,
and steps that must finish even if their caller is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelInvalidStateError

log = logging.getLogger("crab.core.broker.amqp")

CLOSE_STEP_TIMEOUT = 5.0  # each goodbye to RabbitMQ (cancel, channel close) at most
RETRY_PAUSE = 0.1  # between tries of a step that failed on a link going down
AWAY = "the message broker is unreachable; try again"


async def shielded(step: Coroutine[Any, Any, None]) -> None:
    """Runs `step` to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(step)
    # Retrieved, so an error after the caller left is not reported as lost.
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
    await asyncio.shield(task)


def stale(message: AbstractIncomingMessage) -> bool:
    """Received on a channel lost since: it cannot be acknowledged, and
    RabbitMQ has put it back in its queue."""
    try:
        message.channel  # noqa: B018 - raises for a closed channel
    except ChannelInvalidStateError:
        return True
    return False


async def bounded(step: Awaitable[Any]) -> None:
    """A step of closing: done if it can be, given up if RabbitMQ is gone."""
    try:
        async with asyncio.timeout(CLOSE_STEP_TIMEOUT):
            await step
    except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
        log.info("closing step skipped: %r", exc)


async def settle(acknowledgement: Awaitable[None]) -> None:
    """An ack or nack; on a channel lost meanwhile RabbitMQ has already put
    the message back, so there is nothing left to do."""
    try:
        await acknowledgement
    except CONNECTION_EXCEPTIONS as exc:
        log.info("acknowledgement not sent: %r", exc)
