"""`crab serve --metrics`: a real server process, real clients and a real
`crab bench`, its metrics scraped over HTTP as Prometheus would, and each
figure checked against what the test did (docs/metrics.md)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from tests.helpers.chats import is_message, join
from tests.helpers.metrics import Samples, delta, metrics_url, scrape, value
from tests.helpers.process import LIFTED_LIMITS, CrabProcess, crab_env
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow  # each test starts `crab serve` (and some a bench)

SENT = 30
BENCH = ("--members", "5", "--senders", "2", "--messages", "20", "--procs", "1")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CrabProcess]:
    with CrabProcess.start(
        tmp_path / "data", "--metrics", "127.0.0.1:0", "--sign-in-failures", "3", env=LIFTED_LIMITS
    ) as process:
        yield process


async def signed_up(server: CrabProcess, name: str) -> CrabClient:
    client = CrabClient("127.0.0.1", server.port)
    await client.sign_up(name, PASSWORD)
    return client


async def until(url: str, name: str, wanted: float, **labels: str) -> Samples:
    """Scrapes until the gauge reads `wanted` (a stream's end is seen by the
    server a moment after the client leaves); fails after 10 s."""
    seen: list[float] = []
    try:
        async with asyncio.timeout(10):
            while True:
                samples = await scrape(url)
                if value(samples, name, **labels) == wanted:
                    return samples
                seen.append(value(samples, name, **labels))
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{name} never {wanted}: {sorted(set(seen))}") from None


async def test_messages_sessions_and_acknowledgements_match_what_clients_did(
    server: CrabProcess,
) -> None:
    url = metrics_url(server)
    alice, bob = await signed_up(server, "alice"), await signed_up(server, "bob")
    try:
        room = await alice.create_room("metrics")
        await join(alice, bob, room)
        before = await scrape(url)
        assert value(before, "crab_sessions_connected") == 0
        async with alice.session() as a, bob.session() as b:
            during = await until(url, "crab_sessions_connected", 2)
            assert value(during, "crab_session_queue_max_items") >= 0
            for i in range(SENT):
                await a.send(room.id, f"message {i}")
            acks = await a.collect(lambda f: f.ack is not None, SENT)
            assert all(f.ack is not None and f.ack.message is not None for f in acks)
            got = await b.collect(is_message, SENT)
            assert len(got) == SENT
            after = await scrape(url)
            # A send refused at once (no such chat) is counted by its status.
            await a.send(room.id + 1000, "nowhere")
            await a.wait_for(lambda f: f.send_error is not None)
            failed = await scrape(url)
        closed = await until(url, "crab_sessions_connected", 0)
    finally:
        alice.close()
        bob.close()

    assert delta(after, before, "crab_messages_stored_total") == SENT
    assert delta(after, before, "crab_sends_total", status="OK") == SENT
    assert delta(after, before, "crab_ack_latency_seconds_count") == SENT
    assert delta(after, before, "crab_ack_latency_seconds_sum") > 0
    assert delta(after, before, "crab_ack_latency_seconds_bucket", le="+Inf") == SENT
    # Bob got every message live; Alice's copies of hers may still be on the way.
    delivered = delta(closed, before, "crab_messages_delivered_total")
    assert SENT <= delivered <= 2 * SENT
    assert delta(after, before, "crab_commands_total", command="SendMessage", status="OK") == SENT
    assert delta(failed, after, "crab_sends_total", status="NOT_FOUND") == 1
    assert delta(failed, after, "crab_messages_stored_total") == 0
    # Every send was stored in a database write, each event published.
    assert delta(after, before, "crab_database_seconds_count", operation="write") >= 1
    assert delta(after, before, "crab_broker_seconds_count", operation="publish") >= SENT
    assert value(after, "crab_database_errors_total", operation="write", kind="other") == 0
    # The session streams ended when the clients left (CANCELLED: reset by them).
    connects = {
        labels: v
        for (name, labels), v in closed.items()
        if name == "crab_grpc_requests_total" and ("method", "/crab.v1.Session/Connect") in labels
    }
    assert sum(connects.values()) == 2
    ok = value(closed, "crab_grpc_requests_total", method="/crab.v1.Chats/CreateRoom", status="OK")
    assert ok == 1
    assert value(closed, "crab_session_overflows_total") == 0


async def test_sign_in_failures_and_throttles_are_counted_by_status(server: CrabProcess) -> None:
    url = metrics_url(server)
    carol = await signed_up(server, "carol")
    carol.close()
    before = await scrape(url)
    client = CrabClient("127.0.0.1", server.port)
    wrong = throttled = 0
    try:
        # --sign-in-failures 3: the third failure makes the next attempt wait.
        while not throttled and wrong < 10:
            try:
                await client.sign_in("carol", "not the password")
            except GRPCError as error:
                if error.status == Status.UNAUTHENTICATED:
                    wrong += 1
                elif error.status == Status.RESOURCE_EXHAUSTED:
                    throttled += 1
                else:
                    raise
        assert throttled == 1 and wrong >= 3
        after = await scrape(url)
    finally:
        client.close()

    signed = "crab_sign_ins_total"
    assert delta(after, before, signed, method="password", status="UNAUTHENTICATED") == wrong
    assert delta(after, before, signed, method="password", status="RESOURCE_EXHAUSTED") == 1
    assert delta(after, before, "crab_sign_ins_throttled_total", method="password") == 1
    assert delta(after, before, signed, method="password", status="OK") == 0
    rpc = "crab_grpc_requests_total"
    signin = "/crab.v1.Accounts/SignIn"
    assert delta(after, before, rpc, method=signin, status="UNAUTHENTICATED") == wrong
    assert delta(after, before, rpc, method=signin, status="RESOURCE_EXHAUSTED") == 1
    # The provider's sign-in was never tried: its series are there, at 0.
    assert ("crab_sign_ins_total", (("method", "provider"), ("status", "OK"))) in after


async def test_calls_in_progress_follow_a_call_from_ringing_to_its_end(
    server: CrabProcess,
) -> None:
    url = metrics_url(server)
    alice, bob = await signed_up(server, "alice"), await signed_up(server, "bob")
    try:
        room = await alice.create_room("call")
        await join(alice, bob, room)
        async with alice.session() as a, bob.session() as b:
            await a.call(pb.CallRequest(op=pb.CallOp.START, chat_id=room.id))
            rung = await b.wait_for(lambda f: f.call is not None)
            assert rung.call is not None
            ringing = await scrape(url)
            await b.call(pb.CallRequest(op=pb.CallOp.ACCEPT, chat_id=room.id, call_id=rung.call.id))
            await a.wait_for(lambda f: f.call is not None and f.call.status == pb.CallStatus.ACTIVE)
            await b.wait_for(lambda f: f.call is not None and f.call.status == pb.CallStatus.ACTIVE)
            active = await scrape(url)
            await a.call(pb.CallRequest(op=pb.CallOp.LEAVE, chat_id=room.id, call_id=rung.call.id))
            await b.wait_for(lambda f: f.call is not None and f.call.status == pb.CallStatus.ENDED)
            ended = await scrape(url)
    finally:
        alice.close()
        bob.close()

    calls = "crab_calls_in_progress"
    assert value(ringing, calls, status="ringing") == 1
    assert value(ringing, calls, status="active") == 0
    assert value(ringing, "crab_call_participants") == 1  # the caller, until Bob answers
    assert value(active, calls, status="ringing") == 0
    assert value(active, calls, status="active") == 1
    assert value(active, "crab_call_participants") == 2
    assert value(ended, calls, status="active") == value(ended, calls, status="ringing") == 0
    assert value(ended, "crab_call_participants") == 0
    started = value(ended, "crab_commands_total", command="StartCall", status="OK")
    assert started == 1


async def test_metrics_scraped_while_a_bench_runs_match_its_report(server: CrabProcess) -> None:
    url = metrics_url(server)
    before = await scrape(url)
    bench = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crab.cli",
        "bench",
        "fanout",
        *BENCH,
        "--target",
        server.target,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=crab_env(),
    )
    output = asyncio.ensure_future(bench.communicate())
    scrapes: list[Samples] = []
    while not output.done():  # Prometheus scraping a busy server
        scrapes.append(await scrape(url))
        await asyncio.wait({output}, timeout=0.1)
    out, err = await asyncio.wait_for(output, 60)
    assert bench.returncode == 0, err.decode()
    fanout = json.loads(out)["results"]["fanout"]
    closed = await until(url, "crab_sessions_connected", 0)

    assert scrapes, "the bench ended before a single scrape"
    for name in ("crab_messages_stored_total", "crab_messages_delivered_total"):
        seen = [value(s, name) for s in [before, *scrapes, closed]]
        assert seen == sorted(seen), f"{name} went down: {seen}"
    assert delta(closed, before, "crab_messages_stored_total") == fanout["acked_sends"] == 40
    assert delta(closed, before, "crab_ack_latency_seconds_count") == fanout["acked_sends"]
    assert delta(closed, before, "crab_sends_total", status="OK") == fanout["acked_sends"]
    assert delta(closed, before, "crab_messages_delivered_total") == fanout["deliveries"]
    assert max(value(s, "crab_sessions_connected") for s in scrapes) <= 5


async def test_the_servers_listener_survives_junk_and_answers_only_metrics(
    server: CrabProcess,
) -> None:
    url = metrics_url(server)
    host, _, rest = url.removeprefix("http://").partition(":")
    port = int(rest.partition("/")[0])
    for junk in (b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(junk)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    async with httpx.AsyncClient() as client:
        assert (await client.get(url.replace("/metrics", "/other"))).status_code == 404
    assert value(await scrape(url), "crab_sessions_connected") == 0
    assert "Traceback" not in server.log


async def test_the_listener_closes_with_the_server(server: CrabProcess) -> None:
    url = metrics_url(server)
    await scrape(url)
    server.terminate()
    assert server.wait(30) == 0
    with pytest.raises(httpx.ConnectError):
        await scrape(url)
