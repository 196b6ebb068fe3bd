"""The coalescer of ephemeral news: the first at once, then at most one per
interval and key, the newest value winning."""

from __future__ import annotations

import asyncio

from crab.core.services.coalesce import Coalescer


async def test_the_first_goes_at_once_and_the_newest_of_the_rest_after_the_interval() -> None:
    sent: list[tuple[str, int]] = []
    flushed = asyncio.Event()

    async def publish(key: str, value: int) -> None:
        sent.append((key, value))
        if len(sent) == 3:
            flushed.set()

    now = [0.0]
    coalescer: Coalescer[str, int] = Coalescer(0.05, publish, clock=lambda: now[0])
    await coalescer.put("a", 1)
    await coalescer.put("b", 1)  # another key: its own interval
    assert sent == [("a", 1), ("b", 1)]
    await coalescer.put("a", 2)
    await coalescer.put("a", 3)
    assert sent == [("a", 1), ("b", 1)]  # waiting for the interval's end
    await asyncio.wait_for(flushed.wait(), 5)
    assert sent == [("a", 1), ("b", 1), ("a", 3)]
    now[0] = 1.0  # long after: at once again
    await coalescer.put("a", 4)
    assert sent[-1] == ("a", 4)
    coalescer.close()


async def test_a_failed_publish_is_dropped_not_raised() -> None:
    async def publish(key: str, value: int) -> None:
        raise ConnectionError("broker away")

    coalescer: Coalescer[str, int] = Coalescer(1.0, publish)
    await coalescer.put("a", 1)  # logged, not raised: the next change corrects it
    coalescer.close()
