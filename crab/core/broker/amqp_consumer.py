"""The RabbitMQ adapter's command consumer: a batch in hand at a time,
each command acknowledged only after its reply is published."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from crab.core.broker import codec
from crab.core.broker.amqp_steps import bounded, settle, stale
from crab.core.broker.base import BatchHandler, Outcome
from crab.core.domain.commands import Command
from crab.errors import CrabError, DatabaseUnavailable, Unavailable

if TYPE_CHECKING:
    from crab.core.broker.amqp import AmqpBroker

log = logging.getLogger("crab.core.broker.amqp")

# Before a command the database could not take goes back to the queue (the
# worker has already retried it for a while): no hot loop while it is away.
REQUEUE_PAUSE = 1.0


class CommandConsumer:
    """One competing consumer: its own channel, QoS = batch size, and one
    batch in hand at a time."""

    def __init__(self, broker: AmqpBroker, handler: BatchHandler, batch_size: int) -> None:
        self._broker = broker
        self._handler = handler
        self._batch_size = batch_size
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._queue: AbstractQueue | None = None
        self._tag = ""
        self._task: asyncio.Task[None] | None = None
        self._busy: asyncio.Task[None] | None = None

    async def start(self) -> None:
        channel = await self._broker.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=self._batch_size)
        self._queue = await channel.declare_queue(self._broker.commands_queue, durable=True)
        self._tag = await self._queue.consume(self._deliver)
        self._task = asyncio.create_task(self._run(), name="crab-amqp-consumer")

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _next(self) -> AbstractIncomingMessage:
        """The next command still ours: one received on a channel lost since
        is skipped (RabbitMQ has put it back for a consumer of today)."""
        while stale(message := await self._inbox.get()):
            pass
        return message

    async def stop(self) -> None:
        if self._queue is not None and self._broker.online:
            await bounded(self._queue.cancel(self._tag))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._busy is not None:
            await asyncio.gather(self._busy, return_exceptions=True)
        # Closing the channel puts back the commands received but not started.
        if self._queue is not None:
            await bounded(self._queue.channel.close())

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            # Shielded: stopping never cuts a batch in half; stop() waits for it.
            self._busy = asyncio.create_task(self._handle(batch))
            await asyncio.shield(self._busy)

    async def _gather(self) -> list[AbstractIncomingMessage]:
        """The first command, then whatever is waiting or arrives within `linger`."""
        batch = [await self._next()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._broker.linger
        while len(batch) < self._batch_size:
            if not self._inbox.empty():
                if not stale(message := self._inbox.get_nowait()):
                    batch.append(message)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._next(), remaining))
            except TimeoutError:
                break
        return batch

    async def _handle(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        good: list[tuple[AbstractIncomingMessage, Command]] = []
        for message in messages:
            try:
                good.append((message, codec.decode_command(message.body)))
            except codec.CodecError as exc:  # never handleable: answer and drop it
                log.error("undecodable command dropped: %s", exc)
                await self._answer(message, Outcome(error=CrabError("unreadable command")))
        if good and not await self._try(good):
            await self._after_failure(good)

    async def _try(self, batch: Sequence[tuple[AbstractIncomingMessage, Command]]) -> bool:
        """Handles a batch, replies, then acknowledges; False if the handler failed."""
        try:
            outcomes = await self._handler([command for _, command in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} commands")
        except Unavailable as exc:  # RabbitMQ away: its events could not be published
            log.warning("command batch of %d failed: %s", len(batch), exc)
            return False
        except Exception:
            log.exception("command batch of %d failed", len(batch))
            return False
        if away := sum(isinstance(o.error, DatabaseUnavailable) for o in outcomes):
            log.info("%d commands go back to the queue: the database is unavailable", away)
            await asyncio.sleep(REQUEUE_PAUSE)
        await asyncio.gather(
            *(self._answer(m, o) for (m, _), o in zip(batch, outcomes, strict=True))
        )
        return True

    async def _after_failure(
        self, batch: Sequence[tuple[AbstractIncomingMessage, Command]]
    ) -> None:
        """One bad command must not sink the others: a failed batch is tried
        again one by one here. A single command that fails goes back to the
        queue (another worker may do better); one that had already come back
        once is answered with an error and dropped, so a command that always
        breaks its handler cannot circle for ever."""
        if not self._broker.online or stale(batch[0][0]):
            return  # RabbitMQ has put them back already, with the lost channel
        if len(batch) > 1:
            for item in batch:
                if not await self._try([item]):
                    await self._after_failure([item])
            return
        ((message, _),) = batch
        if message.redelivered:
            log.error("command failed again after redelivery; answering with an error")
            await self._answer(message, Outcome(error=Unavailable("a worker failed; try again")))
        else:
            await settle(message.nack(requeue=True))

    async def _answer(self, message: AbstractIncomingMessage, outcome: Outcome) -> None:
        """Reply first, acknowledge after. A reply that cannot be sent puts
        the command back (when the connection is gone, RabbitMQ already has):
        it is delivered again (handlers are idempotent), and the requester's
        reply comes from that delivery. A command the database could not
        take goes back unanswered: done once the database is back, its
        requester gets the reply if still waiting (else "try again" at the
        end of its wait, and its retry finds the first result)."""
        if isinstance(outcome.error, DatabaseUnavailable):
            await settle(message.nack(requeue=True))
            return
        try:
            await self._broker.reply(message, outcome)
        except (Unavailable, *CONNECTION_EXCEPTIONS) as exc:
            log.warning("reply not sent, the command goes back: %r", exc)
            await settle(message.nack(requeue=True))
            return
        await settle(message.ack())
