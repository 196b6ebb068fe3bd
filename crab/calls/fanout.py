"""One media source feeding the tracks of several peer connections.

aiortc's MediaRelay stalled some senders in a mesh; here each track gets its
own small queue and a slow track only loses its own oldest items."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Fanout(Generic[T]):
    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._queues: list[asyncio.Queue[T | None]] = []
        self.closed = False

    def subscribe(self) -> asyncio.Queue[T | None]:
        queue: asyncio.Queue[T | None] = asyncio.Queue(self._depth)
        if self.closed:
            queue.put_nowait(None)
        else:
            self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[T | None]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def push(self, item: T | None) -> None:
        """None ends every subscriber's stream."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)

    def close(self) -> None:
        """Ends every subscriber's stream now, dropping what they hold."""
        if not self.closed:
            for queue in self._queues:
                while not queue.empty():
                    queue.get_nowait()
            self.push(None)
            self.closed = True
            self._queues.clear()
