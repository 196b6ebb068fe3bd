"""The metrics listener (crab/core/metrics_http.py) on a real socket: what
it answers to Prometheus, and what it does with everything else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from crab.core import metrics_http
from crab.core.metrics_http import MetricsServer
from tests.helpers.metrics import parse, value
from tests.helpers.process import run_crab


@pytest.fixture
async def listener() -> AsyncIterator[tuple[str, Counter]]:
    registry = CollectorRegistry()
    ticks = Counter("crab_test_ticks", "Ticks the test made.", registry=registry)
    refreshed = Counter("crab_test_refreshes", "Scrapes seen.", registry=registry)

    async def refresh() -> None:
        refreshed.inc()

    server = MetricsServer([refresh], registry)
    port = await server.start("127.0.0.1", 0)
    yield f"127.0.0.1:{port}", ticks
    await server.close()


async def raw(address: str, data: bytes, read: bool = True) -> bytes:
    """Sends bytes as they are; returns all the listener answers before closing."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10) if read else b""
    finally:
        writer.close()


async def test_get_metrics_answers_prometheus_text_with_fresh_values(
    listener: tuple[str, Counter],
) -> None:
    address, ticks = listener
    ticks.inc(3)
    async with httpx.AsyncClient() as client:
        first = await client.get(f"http://{address}/metrics")
        second = await client.get(f"http://{address}/metrics?name[]=x")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain; version=")
    assert value(parse(first.text), "crab_test_ticks_total") == 3
    # The refresh runs before each scrape, on the loop.
    assert value(parse(second.text), "crab_test_refreshes_total") == 2


async def test_other_paths_and_methods_are_refused(listener: tuple[str, Counter]) -> None:
    address, _ = listener
    async with httpx.AsyncClient() as client:
        other = await client.get(f"http://{address}/other")
        root = await client.get(f"http://{address}/")
        posted = await client.post(f"http://{address}/metrics", content=b"x")
        head = await client.head(f"http://{address}/metrics")
    assert other.status_code == root.status_code == 404
    assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(
    "junk",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello, say
        b"GET\r\n\r\n",
        b"GET /metrics SPDY/3\r\n\r\n",
        b"\x00" * 100 + b"\r\n\r\n",
    ],
    ids=["tls", "no-target", "not-http", "zeros"],
)
async def test_junk_gets_400_and_the_listener_carries_on(
    listener: tuple[str, Counter], junk: bytes
) -> None:
    address, _ = listener
    answer = await raw(address, junk)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{address}/metrics")).status_code == 200


async def test_a_head_too_long_or_cut_short_is_closed_without_an_answer(
    listener: tuple[str, Counter],
) -> None:
    address, _ = listener
    too_long = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * (2 * metrics_http.HEAD_BYTES) + b"\r\n\r\n"
    assert await raw(address, too_long) == b""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /metr")
    writer.write_eof()  # gone before the head ended
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{address}/metrics")).status_code == 200


async def test_close_ends_connections_still_sending_their_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_http, "HEAD_TIMEOUT", 3600.0)  # only close can end it
    server = MetricsServer(registry=CollectorRegistry())
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # and then nothing: a slow client
    await writer.drain()
    await server.close()
    try:
        assert await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        pass  # ended either way
    writer.close()


@pytest.mark.slow  # runs `crab serve` and `crab worker` processes (each exits at once)
@pytest.mark.parametrize(
    "bad", ["9100", "localhost:", ":9100", "localhost:http", "127.0.0.1:70000", "[::1]"]
)
def test_a_bad_metrics_address_is_a_clear_error(bad: str) -> None:
    for command in (("serve",), ("worker", "--broker", "amqp://127.0.0.1:1/")):
        done = run_crab(*command, "--metrics", bad)
        assert done.returncode == 2, done.stderr
        assert "Invalid value for '--metrics'" in done.stderr
        assert f"{bad!r} is not HOST:PORT" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.slow  # runs `crab serve`
def test_a_metrics_port_in_use_stops_the_server_with_a_message(tmp_path: object) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_crab(
            "serve", "--data-dir", str(tmp_path), "--port", "0", "--metrics", f"127.0.0.1:{port}"
        )
    assert done.returncode == 1, done.stderr
    assert f"Error: --metrics 127.0.0.1:{port}: " in done.stderr
    assert "Traceback" not in done.stderr
