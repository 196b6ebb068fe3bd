"""`--metrics HOST:PORT`: Prometheus's text format at GET /metrics, served
from the event loop (docs/metrics.md says why not prometheus_client's own
thread server): the gauges read when scraped (sessions, queues, calls) see
the loop's objects between two of its steps, never half-changed.

A deliberately small HTTP/1.1: one request per connection, its head at
most HEAD_BYTES within HEAD_TIMEOUT, then the answer and close. Anything
else is answered 400, 404 or 405 (or the connection just closed) and the
listener carries on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

PATH = "/metrics"
HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT = 5.0  # seconds for a request's head to arrive
REFRESH_TIMEOUT = 2.0  # seconds a scrape waits for a refresh (a database read)
MAX_CONNECTIONS = 16  # scrapers are few; more at once are closed at once

# Runs before each scrape, on the loop (gauges that need an await).
Refresh = Callable[[], Awaitable[None]]


class MetricsServer:
    def __init__(
        self, refreshes: Sequence[Refresh] = (), registry: CollectorRegistry = REGISTRY
    ) -> None:
        self._refreshes = tuple(refreshes)
        self._registry = registry
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listens on host:port (0: a free port); returns the port."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=HEAD_BYTES)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            if len(self._handlers) >= MAX_CONNECTIONS or task is None:
                return
            self._handlers.add(task)
            await self._answer(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # a client that went away, sent too much or too slowly: closed
        except asyncio.CancelledError:
            pass  # close(): the connection ends here (asyncio would log a cancelled handler)
        except Exception:
            log.exception("metrics request failed")
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HEAD_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            await _reply(writer, 400, b"bad request\n")
            return
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            await _reply(writer, 405, b"only GET\n", extra=b"Allow: GET, HEAD\r\n")
            return
        if target != PATH.encode():
            await _reply(writer, 404, b"metrics are at /metrics\n")
            return
        await self._refresh()
        body = generate_latest(self._registry)
        await _reply(writer, 200, body, CONTENT_TYPE_LATEST, send_body=method == b"GET")

    async def _refresh(self) -> None:
        for refresh in self._refreshes:
            try:
                async with asyncio.timeout(REFRESH_TIMEOUT):
                    await refresh()
            except Exception as exc:  # the gauge keeps its last value
                log.warning("a metric was not refreshed: %r", exc)


REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


async def _reply(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: bytes = b"",
    send_body: bool = True,
) -> None:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
        status,
        REASONS[status],
        content_type.encode(),
        len(body),
    )
    writer.write(head + extra + b"\r\n" + (body if send_body else b""))
    await writer.drain()
