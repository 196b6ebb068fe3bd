"""A lean HTTP/2 gRPC client for the session streams of the load generator.

grpclib (h2 underneath) spends ~200 us of CPU per received message: frame
objects, events, a WINDOW_UPDATE write per DATA frame, a coroutine wake-up.
At tens of thousands of deliveries a second on two cores, that would make
the load generator the bottleneck. This client parses frames with
struct.unpack_from in data_received and hands each gRPC message (bytes) to a
callback; flow control is credited in bulk (like gRPC's C core: an update
once half a window is used), headers go through hpack. It speaks only what a
client of crab's Session/Connect needs: streams it opens, DATA, HEADERS
(+CONTINUATION), SETTINGS, PING, WINDOW_UPDATE, RST_STREAM, GOAWAY.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable
from typing import Any

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0,
    0x1,
    0x3,
    0x4,
    0x6,
    0x7,
    0x8,
    0x9,
)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
RECV_WINDOW = 1 << 20  # per stream, what we let the server send ahead
CONN_WINDOW = 1 << 24
CANCEL = 0x8
HEADER = struct.Struct(">IBI")  # (length << 8 | type), flags, stream id
GRPC_PREFIX = struct.Struct(">BI")


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream_id)
        + payload
    )


class RawStream:
    """One gRPC call on a RawConnection. `on_message(bytes)` gets each
    response message; `on_end(error or None)` once, when the call ends."""

    def __init__(
        self,
        connection: RawConnection,
        stream_id: int,
        on_message: Callable[[bytes], None],
        on_end: Callable[[str | None], None],
    ) -> None:
        self.connection = connection
        self.id = stream_id
        self.on_message = on_message
        self.on_end = on_end
        self.buffer = bytearray()
        self.send_window = connection.peer_initial_window
        self.unacked = 0  # received bytes not yet credited back
        self.status: str | None = None
        self.ended = False

    async def send(self, message: bytes) -> None:
        """One gRPC message (waits only when the server's flow-control window is short)."""
        payload = GRPC_PREFIX.pack(0, len(message)) + message
        conn = self.connection
        while self.send_window < len(payload) or conn.send_window < len(payload):
            if self.ended or conn.closed:
                raise ConnectionError(f"stream {self.id} is closed")
            conn.window_opened.clear()
            await conn.window_opened.wait()
        self.send_window -= len(payload)
        conn.send_window -= len(payload)
        conn.write(frame(DATA, 0, self.id, payload))

    def cancel(self) -> None:
        if not self.ended:
            self.connection.write(frame(RST_STREAM, 0, self.id, struct.pack(">I", CANCEL)))
            self.connection.finish(self, None)

    def data(self, payload: memoryview) -> None:
        source: bytearray | memoryview
        if self.buffer:
            self.buffer += payload
            source = self.buffer
        else:
            source = payload  # the usual case: whole messages, no copy
        offset, size = 0, len(source)
        while size - offset >= 5:
            _, length = GRPC_PREFIX.unpack_from(source, offset)
            if size - offset - 5 < length:
                break
            self.on_message(bytes(source[offset + 5 : offset + 5 + length]))
            offset += 5 + length
        if source is self.buffer:
            del self.buffer[:offset]
        elif offset < size:
            self.buffer = bytearray(source[offset:])

    def headers(self, headers: Iterable[Any], end: bool) -> None:
        found = {_text(k): _text(v) for k, v in headers}
        if "grpc-status" in found and found["grpc-status"] != "0":
            self.status = f"grpc-status {found['grpc-status']}: {found.get('grpc-message', '')}"
        elif found.get(":status", "200") != "200":
            self.status = f"HTTP status {found[':status']}"
        if end:
            self.connection.finish(self, self.status)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RawConnection(asyncio.Protocol):
    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.transport: Any = None
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.streams: dict[int, RawStream] = {}
        self.next_id = 1
        self.peer_initial_window = 65_535
        self.send_window = 65_535
        self.window_opened = asyncio.Event()
        self.closed = False
        self.error: str | None = None
        self.unacked = 0
        self.buffer = bytearray()
        self._header_block: tuple[int, int, bytearray] | None = None  # id, flags, fragments

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(f"{host}:{port}"), host, port)
        return protocol

    # ---- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's is not an asyncio.Transport subclass
        settings = struct.pack(">HI", 0x2, 0) + struct.pack(  # no server push
            ">HI", SETTINGS_INITIAL_WINDOW_SIZE, RECV_WINDOW
        )
        transport.write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", CONN_WINDOW - 65_535))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = self.error or (f"connection lost: {exc}" if exc else "connection closed")
        for stream in list(self.streams.values()):
            self.finish(stream, reason)
        self.window_opened.set()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if buffer:
            buffer += data
            view = memoryview(buffer)
        else:
            view = memoryview(data)
        offset, size = 0, len(view)
        credit: list[bytes] = []
        while size - offset >= 9:
            word, flags, stream_id = HEADER.unpack_from(view, offset)
            length, kind = word >> 8, word & 0xFF
            stream_id &= 0x7FFFFFFF
            if size - offset - 9 < length:
                break
            payload = view[offset + 9 : offset + 9 + length]
            offset += 9 + length
            if kind == DATA:
                self._data(stream_id, flags, payload, credit)
            else:
                self._control(kind, flags, stream_id, payload)
        self.buffer = bytearray(view[offset:])
        if credit and self.transport is not None:
            self.transport.write(b"".join(credit))

    # ---- frames ----------------------------------------------------------

    def _data(self, stream_id: int, flags: int, payload: memoryview, credit: list[bytes]) -> None:
        size = len(payload)
        if flags & PADDED:
            payload = payload[1 : size - payload[0]]
        self.unacked += size
        if self.unacked >= CONN_WINDOW // 2:
            credit.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacked)))
            self.unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.unacked += size
        if stream.unacked >= RECV_WINDOW // 2 and not flags & END_STREAM:
            credit.append(frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", stream.unacked)))
            stream.unacked = 0
        stream.data(payload)
        if flags & END_STREAM:
            self.finish(stream, stream.status)

    def _control(self, kind: int, flags: int, stream_id: int, payload: memoryview) -> None:
        if kind in (HEADERS, CONTINUATION):
            self._headers(kind, flags, stream_id, bytes(payload))
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings(bytes(payload))
                self.write(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if not flags & ACK:
                self.write(frame(PING, ACK, 0, bytes(payload)))
        elif kind == WINDOW_UPDATE:
            (increment,) = struct.unpack(">I", payload)
            increment &= 0x7FFFFFFF
            if stream_id == 0:
                self.send_window += increment
            elif stream_id in self.streams:
                self.streams[stream_id].send_window += increment
            self.window_opened.set()
        elif kind == RST_STREAM:
            stream = self.streams.get(stream_id)
            if stream is not None:
                (code,) = struct.unpack(">I", payload)
                self.finish(stream, stream.status or f"stream reset by the server (code {code})")
        elif kind == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.error = f"GOAWAY (code {code})"
            for sid, stream in list(self.streams.items()):
                if sid > last & 0x7FFFFFFF:
                    self.finish(stream, self.error)

    def _settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                self.window_opened.set()

    def _headers(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if kind == HEADERS:
            start = 0
            end = len(payload)
            if flags & PADDED:
                start, end = 1, end - payload[0]
            if flags & PRIORITY:
                start += 5
            self._header_block = (stream_id, flags, bytearray(payload[start:end]))
        elif self._header_block is not None:
            self._header_block[2].extend(payload)
            flags |= self._header_block[1] & END_STREAM
        if not flags & END_HEADERS or self._header_block is None:
            return
        sid, first_flags, block = self._header_block
        self._header_block = None
        headers = self.decoder.decode(bytes(block))  # always: keeps HPACK state in step
        stream = self.streams.get(sid)
        if stream is not None:
            stream.headers(headers, bool(first_flags & END_STREAM))

    # ---- streams ---------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def request(
        self,
        path: str,
        metadata: dict[str, str],
        on_message: Callable[[bytes], None],
        on_end: Callable[[str | None], None],
    ) -> RawStream:
        """Opens a call (HEADERS sent; messages follow with RawStream.send)."""
        if self.closed:
            raise ConnectionError(self.error or "connection closed")
        stream = RawStream(self, self.next_id, on_message, on_end)
        self.next_id += 2
        self.streams[stream.id] = stream
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", self.authority),
            ("te", "trailers"),
            ("content-type", "application/grpc+proto"),
            *metadata.items(),
        ]
        self.write(frame(HEADERS, END_HEADERS, stream.id, self.encoder.encode(headers)))
        return stream

    def finish(self, stream: RawStream, error: str | None) -> None:
        if stream.ended:
            return
        stream.ended = True
        self.streams.pop(stream.id, None)
        stream.on_end(error)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
