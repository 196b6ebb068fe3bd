"""A raw HTTP/2 client (the h2 library over an asyncio socket) for attacks
that a well-behaved gRPC client cannot make: floods of PING or RST_STREAM,
bodies that declare one length and send another, connections that stop
half way."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes


def grpc_body(payload: bytes, declared: int | None = None) -> bytes:
    """A gRPC length-prefixed message (the prefix may lie)."""
    length = len(payload) if declared is None else declared
    return struct.pack(">?I", False, length) + payload


class RawH2:
    """One HTTP/2 connection, driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.events: list[h2.events.Event] = []
        self.closed_by_server = False
        self.goaway_code: ErrorCodes | int | None = None

    @classmethod
    async def open(cls, port: int, preface: bool = True) -> RawH2:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        if preface:
            raw.h2.initiate_connection()
            await raw.flush()
        return raw

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def request_headers(self, method: str, token: str | None = None) -> list[tuple[str, str]]:
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", method),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if token is not None:
            headers.append(("authorization", f"Bearer {token}"))
        return headers

    def start(self, method: str, token: str | None = None) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream_id, self.request_headers(method, token))
        return stream_id

    async def read_some(self, timeout: float = 5.0) -> bool:
        """Reads what the server sent; False once the server closed."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except (ConnectionError, TimeoutError):
            data = b""
        if not data:
            self.closed_by_server = True
            return False
        try:
            events = self.h2.receive_data(data)
        except Exception:  # the server's GOAWAY may make h2 refuse what follows
            self.closed_by_server = True
            return False
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                self.goaway_code = event.error_code
        self.events.extend(events)
        await self.flush()
        return True

    async def wait_closed(self, timeout: float = 30.0) -> None:
        """Reads until the server closes the connection."""
        async with asyncio.timeout(timeout):
            while await self.read_some(timeout):
                pass

    def close(self) -> None:
        self.writer.close()
