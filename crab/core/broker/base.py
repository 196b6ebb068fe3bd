"""The broker contract every adapter keeps (memory.py, amqp.py for RabbitMQ).

Commands: a work queue with competing consumers. `request` sends one and
waits for the reply correlated to it. A consumer gets commands in batches
(whatever is waiting, up to a bound), handles them, and only then are they
acknowledged: a consumer that dies mid-batch gets them redelivered, so
handlers must be idempotent.

Events: topics such as `chat.7` or `user.3`. Each server process holds one
subscription whose bindings follow its connected users. A subscription that
may have missed events (RabbitMQ's queue was gone while the link was down)
says so through `lost`, after it is receiving again; the memory adapter
never misses any.

A broker that can lose its server (RabbitMQ) makes bind, request and publish
wait a bounded while for it to come back, then go ahead or raise Unavailable
(never another error); unbind never waits, and bindings asked for meanwhile
hold once it is back.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from crab.core import metrics
from crab.core.domain.commands import Command, Returns
from crab.core.domain.events import Event
from crab.errors import CrabError, DatabaseUnavailable, Unavailable


@dataclass(frozen=True, slots=True)
class Outcome:
    """A handler's answer to one command: a result, or an expected error."""

    result: Any = None
    error: CrabError | None = None


# Handles a batch, returns one outcome per command in the same order.
BatchHandler = Callable[[Sequence[Command]], Awaitable[Sequence[Outcome]]]
EventHandler = Callable[[str, Event], Awaitable[None]]
LostHandler = Callable[[], None]
R = TypeVar("R")


class Subscription(abc.ABC):
    """One process's event queue; bindings change as users come and go."""

    @abc.abstractmethod
    async def bind(self, topic: str) -> None: ...

    @abc.abstractmethod
    async def unbind(self, topic: str) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class Broker(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Stops consuming; lets batches in progress finish first."""

    async def request(self, command: Returns[R], timeout: float = 30.0) -> R:
        """Sends a command and returns the handler's result (the type the
        command names: `Returns[Chat]` is answered with a Chat), or raises
        its error."""
        # Every Returns is one of the Command union (domain/commands.py), and
        # the worker answers each with its result type (the codec carries it).
        start = time.perf_counter()
        try:
            return cast(R, await self._request(cast(Command, command), timeout))
        except CrabError as error:
            if not _answered(error):  # the broker's failure, not the worker's answer
                metrics.BROKER_ERRORS.labels("request", metrics.status_of(error)).inc()
            raise
        except Exception:
            metrics.BROKER_ERRORS.labels("request", "INTERNAL").inc()
            raise
        finally:
            _REQUEST_SECONDS.observe(time.perf_counter() - start)

    @abc.abstractmethod
    async def _request(self, command: Command, timeout: float) -> object:
        """The adapter's half of `request`: send, wait for the correlated reply."""

    @abc.abstractmethod
    async def consume(self, handler: BatchHandler, batch_size: int = 100) -> None:
        """Starts one competing consumer of the command queue."""

    async def publish(self, topic: str, event: Event) -> None:
        """Sends the event to the subscriptions bound to `topic`."""
        start = time.perf_counter()
        try:
            await self._publish_event(topic, event)
        except Exception as error:
            metrics.BROKER_ERRORS.labels("publish", metrics.status_of(error)).inc()
            raise
        finally:
            _PUBLISH_SECONDS.observe(time.perf_counter() - start)

    @abc.abstractmethod
    async def _publish_event(self, topic: str, event: Event) -> None:
        """The adapter's half of `publish`."""

    @abc.abstractmethod
    async def subscribe(
        self, handler: EventHandler, lost: LostHandler | None = None
    ) -> Subscription:
        """A new subscription; `handler` gets each event bound to it, in order.
        `lost` is called when events may have been missed (once the
        subscription receives again)."""

    @property
    def online(self) -> bool:
        """Connected to the broker's server now (an in-process broker always is)."""
        return True


_REQUEST_SECONDS = metrics.BROKER_SECONDS.labels("request")
_PUBLISH_SECONDS = metrics.BROKER_SECONDS.labels("publish")


def _answered(error: CrabError) -> bool:
    """Whether the error is the worker's answer to the command (NotFound,
    ...) rather than the broker failing to carry it (Unavailable)."""
    return not isinstance(error, Unavailable) or isinstance(error, DatabaseUnavailable)
