"""Attacks on accounts with plain gRPC calls: wrong passwords by the
dozen, and as many sign-ups and rooms as the server will make."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable

from grpclib.client import Channel

from crab_bench import rpc
from crab_bench.attacks.base import GRACE, Tally, Target, grpc_outcome, left

HAMMERS = 50  # concurrent wrong-password sign-in loops
FLOODERS = 20  # concurrent sign-up / create-room loops


async def _loops(
    target: Target,
    until: float,
    tally: Tally,
    loops: int,
    call: Callable[[Channel, int], Awaitable[object]],
) -> None:
    """`loops` loops, each on its own connection, calling `call(channel,
    n)` (n counts calls over all loops) one after another until `until`."""
    numbers = itertools.count()
    channels = [Channel(target.host, target.port) for _ in range(loops)]

    async def loop(channel: Channel) -> None:
        while left(until) > 0:
            found = await grpc_outcome(tally, call(channel, next(numbers)), until + GRACE)
            if found.startswith("connection"):
                await asyncio.sleep(0.1)

    try:
        await asyncio.gather(*(loop(channel) for channel in channels))
    finally:
        for channel in channels:
            channel.close()


async def signin_hammer(target: Target, until: float, tally: Tally) -> None:
    """50 concurrent loops of wrong-password sign-ins, half of them against
    the real user's account, half against random names."""
    tag = secrets.token_hex(3)

    def call(channel: Channel, n: int) -> Awaitable[object]:
        name = target.victim if n % 2 == 0 else f"nobody{tag}x{n}"
        return rpc.sign_in(channel, name, "wrong-password-1")

    await _loops(target, until, tally, HAMMERS, call)


async def signup_flood(target: Target, until: float, tally: Tally) -> None:
    """As many sign-ups as the server will take (20 at a time)."""
    tag = secrets.token_hex(3)
    await _loops(
        target,
        until,
        tally,
        FLOODERS,
        lambda channel, n: rpc.sign_up(channel, f"flood{tag}x{n}"),
    )


async def room_flood(target: Target, until: float, tally: Tally) -> None:
    """As many CreateRoom calls as the server will take (20 at a time)."""
    await _loops(
        target,
        until,
        tally,
        FLOODERS,
        lambda channel, n: rpc.create_room(channel, target.token, f"flood {n}"),
    )
