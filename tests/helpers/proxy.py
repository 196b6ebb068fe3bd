"""A TCP proxy for tests that cut one client's link to the server and give it
back: it listens on a loopback port and forwards every connection to the
target. It runs its own event loop on a thread, so a synchronous test can use it.

    with TcpProxy(server_port) as proxy:
        ... connect a client to 127.0.0.1:proxy.port ...
        proxy.cut()       # drops every open connection and refuses new ones
        proxy.restore()   # accepts (and forwards) again, on the same port
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

CHUNK = 65536


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted since the start, for debugging
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")
        self._thread.start()
        try:
            self._call(self._listen())
        except BaseException:
            self.close()
            raise

    # ---- the test's side (any thread but the proxy's) --------------------

    def cut(self) -> None:
        """Drops every open connection (both sides) and refuses new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accepts connections again, on the same port."""
        self._call(self._listen())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        future.result(10)

    # ---- the proxy's loop ------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()
        # Let the pumps see their connections end and finish.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(
                    self._pump(reader, up_writer),
                    self._pump(up_reader, writer),
                    return_exceptions=True,
                )
            finally:
                await self._shut(up_writer)
        finally:
            await self._shut(writer)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()
        finally:
            # One side ended: end the other too (a half-open link helps no test).
            sink.transport.abort()

    async def _shut(self, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        self._writers.discard(writer)
