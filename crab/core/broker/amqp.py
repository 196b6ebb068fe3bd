"""The RabbitMQ broker (aio-pika): the same contract as the memory adapter,
across processes and machines.

Commands go to the durable queue `<prefix>.commands` as persistent messages
with publisher confirms; every worker process competes for them, holding at
most `batch_size` unacknowledged per consumer. A batch is handled, each reply
published (and confirmed) to the requester's own exclusive reply queue, and
only then is each command acknowledged: a worker killed mid-batch has its
commands delivered again to another. Events go to the topic exchange
`<prefix>.events`; each subscription is one exclusive, auto-delete queue whose
bindings follow the topics its users need.

The connection is robust: after a reconnect (a lost link, a restarted
RabbitMQ) aio-pika declares the queues again and restores bindings, QoS and
consumers; then the broker binds what was asked for while it was away and
unbinds what was let go. Until all that is done, the broker is "away": bind,
request, publish and reply wait for it (bounded), then go ahead or raise
Unavailable, which the API answers as UNAVAILABLE ("try again"). An unbind
never waits: it is done on the way back. Commands in flight are delivered
again (handlers are idempotent); an event or a reply that could not be
published in time fails its command, which RabbitMQ then delivers again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from crab.core.broker import codec
from crab.core.broker.amqp_consumer import CommandConsumer
from crab.core.broker.amqp_steps import AWAY, RETRY_PAUSE, bounded
from crab.core.broker.amqp_subscription import AmqpSubscription
from crab.core.broker.base import (
    BatchHandler,
    Broker,
    EventHandler,
    LostHandler,
    Outcome,
    Subscription,
)
from crab.core.domain.commands import Command
from crab.core.domain.events import Event
from crab.errors import CrabError, Unavailable

log = logging.getLogger(__name__)

JSON = "application/json"
START_WAIT = 30.0  # seconds `start` waits for RabbitMQ to come up


class AmqpBroker(Broker):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "crab",
        linger: float = 0.002,
        reply_grace: float = 1.0,
        reconnect_interval: float = 1.0,
        reconnect_wait: float = 5.0,
        publish_timeout: float = 30.0,
    ) -> None:
        """`prefix` names the queue and exchange (tests use their own);
        `linger` is how long a consumer waits for more commands to fill a
        batch once it has one; `reply_grace` is how long close() waits for
        replies to requests still open. While RabbitMQ is out of reach, a
        bind or a request waits for it up to `reconnect_wait` seconds after
        it was lost (a client is waiting), publishing an event or a reply up
        to `publish_timeout` (a worker's batch is waiting): a blip is not
        noticed, a longer outage is answered at once."""
        self._url = url
        self.commands_queue = f"{prefix}.commands"
        self.events_exchange = f"{prefix}.events"
        self.prefix = prefix
        self.linger = linger
        self._reply_grace = reply_grace
        self._reconnect_interval = reconnect_interval
        self.reconnect_wait = reconnect_wait
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._events: AbstractExchange | None = None
        self._replies: AbstractQueue | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._consumers: list[CommandConsumer] = []
        self._subscriptions: set[AmqpSubscription] = set()
        self._closing = False
        # Set while connected with every channel, queue, binding and consumer
        # back in place; `_links` counts connections lost, so a repair that a
        # newer loss overtook does not declare the broker back.
        self._restored = asyncio.Event()
        self._links = 0
        self._lost_at = 0.0  # loop time when RabbitMQ went away (last time)
        self._repairs: set[asyncio.Task[None]] = set()

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise Unavailable("the broker is not started")
        return self._connection

    @property
    def online(self) -> bool:
        """Connected now (not between a lost connection and its return)."""
        return self._connection is not None and self._connection.connected.is_set()

    async def start(self, wait: float = START_WAIT) -> None:
        """Connects, waiting up to `wait` seconds for a RabbitMQ that is not
        up yet or still booting (it accepts TCP before it speaks AMQP): a
        replica and its broker often start together."""
        self._closing = False
        self._connection = await self._first_connection(wait)
        self._connection.close_callbacks.add(self._on_lost)
        self._connection.reconnect_callbacks.add(self._on_reconnected)
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
        self._restored.set()

    async def _first_connection(self, wait: float) -> AbstractRobustConnection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                return await aio_pika.connect_robust(
                    self._url, reconnect_interval=self._reconnect_interval
                )
            except (*CONNECTION_EXCEPTIONS, EOFError) as exc:  # EOF: booting, hung up
                if loop.time() >= deadline:
                    raise
                log.warning("RabbitMQ not reachable yet (%s); trying again", exc or type(exc))
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))

    # ---- losing RabbitMQ and getting it back -----------------------------------

    def _on_lost(self, *_: Any) -> None:
        # Called for the lost connection, then again for each failed attempt.
        self._links += 1
        if self._restored.is_set():
            self._restored.clear()
            self._lost_at = asyncio.get_running_loop().time()
            if not self._closing:
                log.warning("lost the connection to RabbitMQ; reconnecting")

    def _on_reconnected(self, *_: Any) -> None:
        # aio-pika has restored what it knew of: channels, queues, bindings,
        # consumers. Called while it still holds the connection's restore, so
        # the rest (bindings changed while away) goes on a task of its own.
        task = asyncio.create_task(self._repair(self._links), name="crab-amqp-repair")
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair(self, link: int) -> None:
        for subscription in tuple(self._subscriptions):
            await subscription.repair()
        if link == self._links and not self._closing:
            log.warning("reconnected to RabbitMQ")
            self._restored.set()

    def deadline(self, wait: float) -> float:
        """Until when (loop time) a step may wait for RabbitMQ: `wait`
        seconds from now, or if it is away, from when it was lost."""
        if self._restored.is_set():
            return asyncio.get_running_loop().time() + wait
        return self._lost_at + wait

    async def ready(
        self, channel: AbstractRobustChannel | None, deadline: float, *, whole: bool = True
    ) -> None:
        """Returns once RabbitMQ is reachable and `channel` is open (with
        `whole`, once everything is restored after a reconnect), or raises
        Unavailable at `deadline` (loop time; one passed already: unless it
        is so now). Not refused while closing: a batch in hand still
        publishes its events and replies."""
        try:
            async with asyncio.timeout_at(deadline):
                if whole:
                    await self._restored.wait()
                if channel is not None:
                    await channel.ready()
        except TimeoutError:
            raise Unavailable(AWAY) from None

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        for task in tuple(self._repairs):
            task.cancel()
        await asyncio.gather(*self._repairs, return_exceptions=True)
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
            await bounded(self._connection.close())

    # ---- commands: the requester's side --------------------------------------

    async def _request(self, command: Command, timeout: float) -> object:
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
                # Sent once RabbitMQ is back, reply queue included; never twice
                # here: a lost confirmation may hide a command RabbitMQ has
                # (the client sends again; handlers are idempotent).
                await self.ready(self._publisher, self.deadline(self.reconnect_wait))
                await self._publisher.default_exchange.publish(
                    message, routing_key=self.commands_queue, mandatory=True
                )
                return await future
        except TimeoutError:
            raise Unavailable("no worker answered in time; try again") from None
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("command not sent: %r", exc)
            raise Unavailable(AWAY) from None
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
        consumer = CommandConsumer(self, handler, batch_size)
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
        await self._publish(self._publisher, self._publisher.default_exchange, reply, reply_to)

    # ---- events ---------------------------------------------------------------

    async def _publish_event(self, topic: str, event: Event) -> None:
        if self._events is None or self._publisher is None:
            raise Unavailable("the broker is not started")
        message = aio_pika.Message(codec.encode_event(event), content_type=JSON)
        await self._publish(self._publisher, self._events, message, topic)

    async def _publish(
        self,
        channel: AbstractRobustChannel,
        exchange: AbstractExchange,
        message: aio_pika.Message,
        routing_key: str,
    ) -> None:
        """Publishes and waits for RabbitMQ's confirmation; while RabbitMQ is
        away, waits for it to come back (see `deadline`), tries again if the
        link fails meanwhile, else raises Unavailable. An event or a reply
        may so arrive twice, never silently not at all: sessions skip message
        ids they have sent, requesters replies already answered."""
        loop = asyncio.get_running_loop()
        deadline = self.deadline(self._publish_timeout)
        while True:
            try:
                await self.ready(channel, deadline)
                async with asyncio.timeout(self._publish_timeout):  # a hung link
                    await exchange.publish(message, routing_key=routing_key, mandatory=False)
                return
            except Unavailable:
                log.warning("not published to %s: RabbitMQ is away", routing_key)
                raise
            except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
                if loop.time() >= deadline:
                    log.warning("not published to %s: %r", routing_key, exc)
                    raise Unavailable(AWAY) from None
                log.info("publishing to %s again after %r", routing_key, exc)
                await asyncio.sleep(RETRY_PAUSE)

    async def subscribe(
        self, handler: EventHandler, lost: LostHandler | None = None
    ) -> Subscription:
        subscription = AmqpSubscription(self, handler, lost)
        await subscription.open()
        self._subscriptions.add(subscription)
        return subscription

    def forget(self, subscription: AmqpSubscription) -> None:
        self._subscriptions.discard(subscription)


__all__ = ["AmqpBroker", "AmqpSubscription", "CommandConsumer"]
