"""A worker process that takes commands and never answers, for the test
that kills it: `python -m tests.contract.held_worker URL PREFIX`. It prints
`ready`, then one line per batch it holds (the rooms' names, as JSON)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence

from crab.core.broker.amqp import AmqpBroker
from crab.core.broker.base import Outcome
from crab.core.domain.commands import Command, CreateRoom


async def main(url: str, prefix: str) -> None:
    broker = AmqpBroker(url, prefix=prefix)
    await broker.start()

    async def hold(batch: Sequence[Command]) -> list[Outcome]:
        print(json.dumps([c.name for c in batch if isinstance(c, CreateRoom)]), flush=True)
        await asyncio.Event().wait()  # until killed
        return []

    await broker.consume(hold, batch_size=10)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
