"""The RabbitMQ broker (aio-pika): the same contract as the memory adapter,
across processes and machines.

Commands go to the durable queue `<prefix>.commands` as persistent messages
with publisher confirms; every worker process competes for them, holding at
most `batch_size` unacknowledged per consumer. A batch is handled, each reply
published (and confirmed) to the requester's own exclusive reply queue, and
only then is each command acknowledged: a worker killed mid-batch has its
commands delivered again to another. Events go to the topic exchange
`<prefix>.events`; each subscription is one exclusive, auto-delete queue whose
bindings follow the topics its users need. The connection is robust: after a
reconnect, aio-pika declares the queues again, restores bindings, QoS and
consumers. What was in flight then is delivered again (commands) or lost
(events, and replies: the requester times out with Unavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from crab.core.broker import codec
from crab.core.broker.base import BatchHandler, Broker, EventHandler, Outcome, Subscription
from crab.core.domain.commands import Command
from crab.core.domain.events import Event
from crab.errors import CrabError, Unavailable

log = logging.getLogger(__name__)

JSON = "application/json"
EVENT_PREFETCH = 1000  # events in hand per subscription; the rest wait in RabbitMQ
CLOSE_STEP_TIMEOUT = 5.0  # each goodbye to RabbitMQ (cancel, channel close) at most


class AmqpBroker(Broker):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "crab",
        linger: float = 0.002,
        reply_grace: float = 1.0,
        reconnect_interval: float = 1.0,
        publish_timeout: float = 10.0,
    ) -> None:
        """`prefix` names the queue and exchange (tests use their own);
        `linger` is how long a consumer waits for more commands to fill a
        batch once it has one; `reply_grace` is how long close() waits for
        replies to requests still open; `publish_timeout` bounds publishing
        an event or a reply while RabbitMQ is out of reach."""
        self._url = url
        self.commands_queue = f"{prefix}.commands"
        self.events_exchange = f"{prefix}.events"
        self.prefix = prefix
        self.linger = linger
        self._reply_grace = reply_grace
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._replies: AbstractQueue | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._consumers: list[_Consumer] = []
        self._subscriptions: set[AmqpSubscription] = set()
        self._closing = False

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise Unavailable("the broker is not started")
        return self._connection

    @property
    def online(self) -> bool:
        """Connected now (not between a lost connection and its return)."""
        return self._connection is not None and self._connection.connected.is_set()

    async def start(self) -> None:
        self._closing = False
        self._connection = await aio_pika.connect_robust(
            self._url, reconnect_interval=self._reconnect_interval
        )
        self._publisher = await self._connection.channel(publisher_confirms=True)
        await self._publisher.declare_queue(self.commands_queue, durable=True)
        self._events = await self._publisher.declare_exchange(
            self.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        replies = await self._connection.channel(publisher_confirms=False)
        self._replies = await replies.declare_queue(
            f"{self.prefix}.reply.{uuid.uuid4().hex}", exclusive=True, auto_delete=True
        )
        await self._replies.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        # Each consumer stops taking commands, then finishes the batch it has.
        await asyncio.gather(*(c.stop() for c in self._consumers), return_exceptions=True)
        self._consumers.clear()
        for subscription in tuple(self._subscriptions):
            await subscription.close()
        open_requests = [f for f in self._pending.values() if not f.done()]
        if open_requests:  # replies just published may still be on their way
            await asyncio.wait(open_requests, timeout=self._reply_grace)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Unavailable("server is shutting down"))
        if self._connection is not None:
            await _bounded(self._connection.close())

    # ---- commands: the requester's side --------------------------------------

    async def request(self, command: Command, timeout: float = 30.0) -> Any:
        if self._closing or self._publisher is None or self._replies is None:
            raise Unavailable("server is shutting down")
        correlation_id = f"{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        message = aio_pika.Message(
            codec.encode_command(command),
            content_type=JSON,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            correlation_id=correlation_id,
            reply_to=self._replies.name,
        )
        try:
            async with asyncio.timeout(timeout):
                await self._publisher.default_exchange.publish(
                    message, routing_key=self.commands_queue, mandatory=True
                )
                return await future
        except TimeoutError:
            raise Unavailable("no worker answered in time; try again") from None
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("command not sent: %r", exc)
            raise Unavailable("the message broker is unreachable; try again") from None
        finally:
            self._pending.pop(correlation_id, None)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is None or future.done():
            return  # the requester gave up; the work is stored regardless
        try:
            outcome = codec.decode_outcome(message.body)
        except codec.CodecError as exc:
            log.error("undecodable reply: %s", exc)
            future.set_exception(CrabError("the worker's reply could not be read"))
            return
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.result)

    # ---- commands: the worker's side -------------------------------------------

    async def consume(self, handler: BatchHandler, batch_size: int = 100) -> None:
        if self._closing:
            raise Unavailable("server is shutting down")
        consumer = _Consumer(self, handler, batch_size)
        await consumer.start()
        self._consumers.append(consumer)

    async def reply(self, message: AbstractIncomingMessage, outcome: Outcome) -> None:
        """Sends one outcome to the requester of `message`, confirmed."""
        reply_to = message.reply_to or ""
        if message.correlation_id is None or self._publisher is None:
            return
        if not reply_to.startswith(f"{self.prefix}.reply."):  # never into another queue
            log.warning("command without a usable reply_to %r: no reply", reply_to)
            return
        try:
            body = codec.encode_outcome(outcome)
        except codec.CodecError as exc:
            log.error("cannot encode the outcome of a command: %s", exc)
            body = codec.encode_outcome(Outcome(error=CrabError("the reply could not be sent")))
        reply = aio_pika.Message(body, content_type=JSON, correlation_id=message.correlation_id)
        # Not mandatory: a requester that has gone away just never reads it.
        async with asyncio.timeout(self._publish_timeout):
            await self._publisher.default_exchange.publish(
                reply, routing_key=reply_to, mandatory=False
            )

    # ---- events ---------------------------------------------------------------

    async def publish(self, topic: str, event: Event) -> None:
        if self._events is None:
            raise Unavailable("the broker is not started")
        message = aio_pika.Message(codec.encode_event(event), content_type=JSON)
        try:
            async with asyncio.timeout(self._publish_timeout):
                await self._events.publish(message, routing_key=topic, mandatory=False)
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            log.warning("event on %s not published: %r", topic, exc)
            raise Unavailable("the message broker is unreachable") from None

    async def subscribe(self, handler: EventHandler) -> Subscription:
        subscription = AmqpSubscription(self, handler)
        await subscription.open()
        self._subscriptions.add(subscription)
        return subscription

    def forget(self, subscription: AmqpSubscription) -> None:
        self._subscriptions.discard(subscription)


class _Consumer:
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

    async def stop(self) -> None:
        if self._queue is not None and self._broker.online:
            await _bounded(self._queue.cancel(self._tag))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._busy is not None:
            await asyncio.gather(self._busy, return_exceptions=True)
        # Closing the channel puts back the commands received but not started.
        if self._queue is not None:
            await _bounded(self._queue.channel.close())

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            # Shielded: stopping never cuts a batch in half; stop() waits for it.
            self._busy = asyncio.create_task(self._handle(batch))
            await asyncio.shield(self._busy)

    async def _gather(self) -> list[AbstractIncomingMessage]:
        """The first command, then whatever is waiting or arrives within `linger`."""
        batch = [await self._inbox.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._broker.linger
        while len(batch) < self._batch_size:
            if not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._inbox.get(), remaining))
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
        except Exception:
            log.exception("command batch of %d failed", len(batch))
            return False
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
        if not self._broker.online:
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
            await _settle(message.nack(requeue=True))

    async def _answer(self, message: AbstractIncomingMessage, outcome: Outcome) -> None:
        """Reply first, acknowledge after. When the connection is gone both
        fail, and RabbitMQ delivers the command again (handlers are
        idempotent); the requester's reply then comes from that delivery."""
        try:
            await self._broker.reply(message, outcome)
        except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            log.warning("reply not sent: %r", exc)
        await _settle(message.ack())


class AmqpSubscription(Subscription):
    """One exclusive, auto-delete queue bound to the event exchange; its
    events reach the handler one at a time, in order."""

    def __init__(self, broker: AmqpBroker, handler: EventHandler) -> None:
        self._broker = broker
        self._handler = handler
        self._inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._queue: AbstractQueue | None = None
        self._tag = ""
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        channel = await self._broker.connection.channel(publisher_confirms=False)
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
        while (message := await self._inbox.get()) is not None:
            topic = message.routing_key or ""
            try:
                await self._handler(topic, codec.decode_event(message.body))
            except codec.CodecError as exc:
                log.error("undecodable event on %s dropped: %s", topic, exc)
            except Exception:
                log.exception("event handler failed on %s", topic)
            await _settle(message.ack())

    # Shielded: aiormq closes the whole channel when an RPC is cancelled, and
    # the caller is a session whose task ends whenever its client goes away.
    async def bind(self, topic: str) -> None:
        assert self._queue is not None
        await asyncio.shield(self._queue.bind(self._broker.events_exchange, routing_key=topic))

    async def unbind(self, topic: str) -> None:
        assert self._queue is not None
        await asyncio.shield(self._queue.unbind(self._broker.events_exchange, routing_key=topic))

    async def close(self) -> None:
        """No more deliveries; the events already received are handled first."""
        self._broker.forget(self)
        if self._task is None or self._task.done():
            return
        if self._queue is not None and self._broker.online:
            await _bounded(self._queue.cancel(self._tag))  # auto-delete drops the queue
        self._inbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._queue is not None:
            await _bounded(self._queue.channel.close())


async def _bounded(step: Awaitable[Any]) -> None:
    """A step of closing: done if it can be, given up if RabbitMQ is gone."""
    try:
        async with asyncio.timeout(CLOSE_STEP_TIMEOUT):
            await step
    except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
        log.info("closing step skipped: %r", exc)


async def _settle(acknowledgement: Awaitable[None]) -> None:
    """An ack or nack; on a channel lost meanwhile RabbitMQ has already put
    the message back, so there is nothing left to do."""
    try:
        await acknowledgement
    except CONNECTION_EXCEPTIONS as exc:
        log.info("acknowledgement not sent: %r", exc)
