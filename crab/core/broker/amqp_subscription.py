"""The RabbitMQ adapter's event subscription: one exclusive queue per
process, its bindings following the topics its users need.

The queue is exclusive and auto-delete: while the link is down RabbitMQ
drops it, and aio-pika declares it again empty, so every event published
meanwhile is gone. After each reconnect the subscription says so (`lost`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from crab.core.broker import codec
from crab.core.broker.amqp_steps import AWAY, RETRY_PAUSE, bounded, settle, shielded
from crab.core.broker.base import EventHandler, LostHandler, Subscription
from crab.errors import Unavailable

if TYPE_CHECKING:
    from crab.core.broker.amqp import AmqpBroker

log = logging.getLogger("crab.core.broker.amqp")

EVENT_PREFETCH = 1000  # events in hand per subscription; the rest wait in RabbitMQ


class AmqpSubscription(Subscription):
    """One exclusive, auto-delete queue bound to the event exchange; its
    events reach the handler one at a time, in order."""

    def __init__(
        self, broker: AmqpBroker, handler: EventHandler, lost: LostHandler | None = None
    ) -> None:
        self._broker = broker
        self._handler = handler
        self._lost = lost
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._queue: AbstractQueue | None = None
        self._channel: AbstractRobustChannel | None = None
        self._tag = ""
        self._task: asyncio.Task[None] | None = None
        # What the hub asked for, and what RabbitMQ has (as aio-pika's robust
        # queue records it, and restores after a reconnect). They differ while
        # a change is on its way, or was asked for while RabbitMQ was away.
        self._wanted: set[str] = set()
        self._bound: set[str] = set()

    async def open(self) -> None:
        self._channel = channel = await self._broker.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=EVENT_PREFETCH)
        # Declared on this channel too, so a reconnect restores it before the bindings.
        await channel.declare_exchange(
            self._broker.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._queue = await channel.declare_queue(
            f"{self._broker.prefix}.events.{uuid.uuid4().hex}", exclusive=True, auto_delete=True
        )
        self._tag = await self._queue.consume(self._deliver)
        self._task = asyncio.create_task(self._run(), name="crab-amqp-subscription")

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        stopping = False
        while not stopping and (message := await self._inbox.get()) is not None:
            # Everything already here is handled before one acknowledgement
            # for the lot: awaiting an ack per event let the members' writers
            # run between events, one message per socket write (the scaled
            # replica spent ~4x the CPU of one process per message).
            batch = [message]
            while not self._inbox.empty():
                more = self._inbox.get_nowait()
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            for item in batch:
                await self._handle(item)
            await settle(batch[-1].ack(multiple=True))  # this channel's deliveries up to it

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        topic = message.routing_key or ""
        try:
            await self._handler(topic, codec.decode_event(message.body))
        except codec.CodecError as exc:
            log.error("undecodable event on %s dropped: %s", topic, exc)
        except Exception:
            log.exception("event handler failed on %s", topic)

    # Shielded: aiormq closes the whole channel when an RPC is cancelled, and
    # the caller is a session whose task ends whenever its client goes away.
    async def bind(self, topic: str) -> None:
        """Bound once this returns. While RabbitMQ is away it waits up to
        `reconnect_wait`, then raises Unavailable; the topic stays wanted and
        is bound as soon as RabbitMQ is back."""
        self._wanted.add(topic)
        await shielded(self._settle(topic, self._broker.deadline(self._broker.reconnect_wait)))

    async def unbind(self, topic: str) -> None:
        """Never waits for RabbitMQ: while it is away, the topic is unbound
        on its way back (until then nothing is delivered anyway)."""
        self._wanted.discard(topic)
        try:
            await shielded(self._settle(topic, self._broker.deadline(0.0)))
        except Unavailable:
            log.info("unbinding %s once RabbitMQ is back", topic)

    async def _settle(self, topic: str, deadline: float, *, whole: bool = True) -> None:
        """Binds or unbinds `topic` until RabbitMQ has what is wanted (it
        may change meanwhile), or raises Unavailable at `deadline`."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        exchange = self._broker.events_exchange
        while (wanted := topic in self._wanted) != (topic in self._bound):
            await self._broker.ready(self._channel, deadline, whole=whole)
            try:
                if wanted:
                    await self._queue.bind(exchange, routing_key=topic)
                    self._bound.add(topic)
                else:
                    await self._queue.unbind(exchange, routing_key=topic)
                    self._bound.discard(topic)
            except CONNECTION_EXCEPTIONS as exc:
                if loop.time() >= deadline:
                    raise Unavailable(AWAY) from None
                log.info("%s %s again after %r", "binding" if wanted else "unbinding", topic, exc)
                await asyncio.sleep(RETRY_PAUSE)

    async def repair(self) -> None:
        """After a reconnect: binds what was asked for while RabbitMQ was
        away, and unbinds what was let go."""
        # One deadline for them all: a channel that does not come back costs
        # one wait, not one per topic.
        deadline = asyncio.get_running_loop().time() + self._broker.reconnect_wait
        for topic in sorted(self._wanted ^ self._bound):
            try:
                await self._settle(topic, deadline, whole=False)
            except Unavailable:
                log.error("could not restore the binding of %s; until it is asked again", topic)
        # The queue is back (empty) with its bindings: what was published
        # while it was gone is lost for good.
        if self._lost is not None:
            try:
                self._lost()
            except Exception:
                log.exception("handling lost events failed")

    async def close(self) -> None:
        """No more deliveries; the events already received are handled first."""
        self._broker.forget(self)
        if self._task is None or self._task.done():
            return
        if self._queue is not None and self._broker.online:
            await bounded(self._queue.cancel(self._tag))  # auto-delete drops the queue
        self._inbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._queue is not None:
            await bounded(self._queue.channel.close())
