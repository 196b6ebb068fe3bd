"""Raw HTTP/2 for attacks: a connection that notes what the server does to
it (GOAWAY, PING acks, closing), bodies written frame by frame within the
server's flow-control windows, and a unary call that reports how it ended
whatever bytes it carried. Built on the bench's lean client (h2raw.py)."""

from __future__ import annotations

import asyncio
import struct
import time

from grpclib.const import Status
from h2.errors import ErrorCodes

from crab_bench.attacks.base import GRACE, left
from crab_bench.h2raw import (
    ACK,
    DATA,
    END_STREAM,
    GOAWAY,
    GRPC_PREFIX,
    PING,
    RawConnection,
    RawStream,
    frame,
)

MAX_FRAME = 16_384  # HTTP/2's default SETTINGS_MAX_FRAME_SIZE


def h2_error(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"code {code}"


class Watched(RawConnection):
    """A RawConnection that also counts the server's PING acks and keeps
    the error code of a GOAWAY."""

    def __init__(self, authority: str) -> None:
        super().__init__(authority)
        self.pings_acked = 0
        self.goaway: int | None = None

    def _control(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        if kind == PING and flags & ACK:
            self.pings_acked += 1
        elif kind == GOAWAY and len(payload) >= 8:
            self.goaway = struct.unpack(">II", payload[:8])[1]
        super()._control(kind, flags, stream_id, payload)

    def fate(self) -> str:
        """What the server did to this connection."""
        if self.goaway is not None:
            return f"GOAWAY {h2_error(self.goaway)}"
        return "connection closed" if self.closed else "connection kept open"


async def open_watched(host: str, port: int) -> Watched:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: Watched(f"{host}:{port}"), host, port)
    return protocol


def outcome(error: str | None) -> str:
    """A RawStream's end (None: grpc-status 0) as a short label."""
    if error is None:
        return "OK"
    if error.startswith("grpc-status "):
        code = error.removeprefix("grpc-status ").partition(":")[0]
        try:
            return Status(int(code)).name
        except ValueError:
            return f"grpc-status {code}"
    if error.startswith("GOAWAY (code "):
        return "GOAWAY " + h2_error(int(error.removeprefix("GOAWAY (code ").rstrip(")")))
    if error.startswith("stream reset"):
        return "RST_STREAM"
    if error.startswith("HTTP status"):
        return error
    return "connection closed"


async def send_body(stream: RawStream, payload: bytes, until: float, end: bool = True) -> int:
    """Writes `payload` as DATA frames as fast as the server's windows
    allow; stops when the stream ends, the connection closes, or `until`
    passes. Returns the bytes written."""
    conn = stream.connection
    view = memoryview(payload)
    offset = 0
    while offset < len(view):
        if stream.ended or conn.closed:
            return offset
        room = min(MAX_FRAME, len(view) - offset, stream.send_window, conn.send_window)
        if room <= 0:
            conn.window_opened.clear()
            try:
                await asyncio.wait_for(conn.window_opened.wait(), left(until))
            except TimeoutError:
                return offset
            continue
        stream.send_window -= room
        conn.send_window -= room
        conn.write(frame(DATA, 0, stream.id, bytes(view[offset : offset + room])))
        offset += room
        await asyncio.sleep(0)  # let the server's answers (windows, an early end) in
    if end and not stream.ended and not conn.closed:
        conn.write(frame(DATA, END_STREAM, stream.id))
    return offset


async def raw_call(
    conn: RawConnection,
    path: str,
    body: bytes,
    token: str | None,
    until: float,
    declared: int | None = None,
    answer_by: float | None = None,
) -> tuple[str, int]:
    """One call whose request is `body` as given (its gRPC length prefix
    says `declared` when set); returns (how it ended, bytes written)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[str | None] = loop.create_future()

    def on_end(error: str | None) -> None:
        if not ended.done():
            ended.set_result(error)

    metadata = {"authorization": f"Bearer {token}"} if token else {}
    stream = conn.request(path, metadata, lambda _: None, on_end)
    prefix = GRPC_PREFIX.pack(0, len(body) if declared is None else declared)
    written = await send_body(stream, prefix + body, until)
    deadline = until + GRACE if answer_by is None else answer_by
    try:
        error = await asyncio.wait_for(asyncio.shield(ended), deadline - time.monotonic())
    except TimeoutError:
        stream.cancel()
        return "no answer in time", written
    return outcome(error), written
