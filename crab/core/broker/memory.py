"""The in-process broker: bounded asyncio queues keep the contract of the
RabbitMQ adapter for one process (a real feature, not a test double)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from crab.core.broker.base import BatchHandler, Broker, EventHandler, LostHandler, Subscription
from crab.core.domain.commands import Command
from crab.core.domain.events import Event
from crab.errors import Unavailable

log = logging.getLogger(__name__)

_STOP = object()
GATHER_TURNS = 16


class MemorySubscription(Subscription):
    def __init__(self, broker: MemoryBroker, handler: EventHandler, size: int) -> None:
        self._broker = broker
        self._handler = handler
        self.queue: asyncio.Queue[tuple[str, Event] | object] = asyncio.Queue(size)
        self._task = asyncio.create_task(self._run(), name="crab-memory-subscription")

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            if item is _STOP:
                return
            topic, event = item  # type: ignore[misc]
            try:
                await self._handler(topic, event)
            except Exception:
                log.exception("event handler failed on %s", topic)

    async def bind(self, topic: str) -> None:
        self._broker._bindings[topic].add(self)

    async def unbind(self, topic: str) -> None:
        bound = self._broker._bindings.get(topic)
        if bound is not None:
            bound.discard(self)
            if not bound:
                del self._broker._bindings[topic]

    async def close(self) -> None:
        for topic in list(self._broker._bindings):
            await self.unbind(topic)
        await self.queue.put(_STOP)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class MemoryBroker(Broker):
    def __init__(self, queue_size: int = 10_000) -> None:
        self._queue_size = queue_size
        self._commands: asyncio.Queue[tuple[int, Command]] = asyncio.Queue(queue_size)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._bindings: defaultdict[str, set[MemorySubscription]] = defaultdict(set)
        self._consumers: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        self._closing = False

    async def close(self) -> None:
        self._closing = True
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers.clear()
        # Batches in hand are stored and answered before we stop.
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Unavailable("server is shutting down"))

    async def _request(self, command: Command, timeout: float) -> object:
        if self._closing:
            raise Unavailable("server is shutting down")
        correlation_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self._commands.put((correlation_id, command))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise Unavailable("no worker answered in time; try again") from None
        finally:
            self._pending.pop(correlation_id, None)

    async def consume(self, handler: BatchHandler, batch_size: int = 100) -> None:
        task = asyncio.create_task(self._consume(handler, batch_size), name="crab-consumer")
        self._consumers.append(task)

    async def _consume(self, handler: BatchHandler, batch_size: int) -> None:
        while True:
            batch = [await self._commands.get()]
            await self._gather()
            while len(batch) < batch_size and not self._commands.empty():
                batch.append(self._commands.get_nowait())
            # Shielded: cancelling the consumer never cuts a batch in half;
            # close() waits for it, like an ack after commit.
            task = asyncio.create_task(self._handle(handler, batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            await asyncio.shield(task)

    async def _gather(self) -> None:
        """Before taking a batch, lets the sends whose bytes the loop has
        already read reach the queue (a few loop turns, while it grows):
        fuller groups mean fewer commits and fewer writes per message
        (bench fanout 100 x 10: ~250 -> ~300 acked sends/s). A lone
        command waits one loop turn."""
        for _ in range(GATHER_TURNS):
            before = self._commands.qsize()
            await asyncio.sleep(0)
            if self._commands.qsize() == before:
                return

    async def _handle(self, handler: BatchHandler, batch: Sequence[tuple[int, Command]]) -> None:
        try:
            outcomes = await handler([command for _, command in batch])
        except Exception as exc:  # a bug in a handler: fail the batch, keep consuming
            log.exception("command batch failed")
            for correlation_id, _ in batch:
                self._resolve(correlation_id, None, exc)
            return
        for (correlation_id, _), outcome in zip(batch, outcomes, strict=True):
            self._resolve(correlation_id, outcome.result, outcome.error)

    def _resolve(self, correlation_id: int, result: Any, error: BaseException | None) -> None:
        future = self._pending.get(correlation_id)
        if future is None or future.done():
            return  # the requester gave up; the work is stored regardless
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    async def _publish_event(self, topic: str, event: Event) -> None:
        for subscription in tuple(self._bindings.get(topic, ())):
            await subscription.queue.put((topic, event))

    async def subscribe(
        self, handler: EventHandler, lost: LostHandler | None = None
    ) -> Subscription:
        # No link to lose: `lost` is never called.
        return MemorySubscription(self, handler, self._queue_size)
