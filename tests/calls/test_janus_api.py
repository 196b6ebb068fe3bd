"""What crab/calls/janus.py does with answers a Janus should never send:
each is a SfuError that says what was wrong, never a KeyError, a hang or a
huge allocation. An in-memory Janus (httpx.MockTransport) plays the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from aiortc import RTCPeerConnection

from crab.calls import janus, sfu
from crab.calls.janus import MAX_BODY, MAX_SDP, JanusSession, Jsep, SfuError, parse_jsep

URL = "http://janus.test/janus"
Reply = Callable[[dict[str, object]], httpx.Response]


def fake_janus(on_post: Reply, polls: list[object] | None = None) -> httpx.MockTransport:
    """POSTs answered by `on_post`; long-polls answered from `polls`, then
    held open (as Janus does when it has nothing to say)."""
    queued = list(polls or [])

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            if queued:
                return httpx.Response(200, json=queued.pop(0))
            await asyncio.Event().wait()
        return on_post(json.loads(request.content))

    return httpx.MockTransport(handle)


def answer(body: object) -> Reply:
    return lambda request: httpx.Response(200, json=body)


def created(request: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, json={"janus": "success", "data": {"id": 11}})


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda r: httpx.Response(200, content=b"<html>"), "not JSON"),
        (lambda r: httpx.Response(200, content=b" " * (MAX_BODY + 1)), f"more than {MAX_BODY}"),
        (lambda r: httpx.Response(500, json={}), "HTTP 500"),
        (answer([1, 2]), "not an object"),
        (answer({"janus": "error", "error": {"code": 403, "reason": "no"}}), "'no' \\(code 403\\)"),
        (answer({"janus": "success"}), "to create"),
        (answer({"janus": "success", "data": {"id": "11"}}), "not a positive integer"),
        (answer({"janus": "success", "data": {"id": -1}}), "not a positive integer"),
        (answer({"janus": "success", "data": {"id": 2**60}}), "not a positive integer"),
        (answer({"janus": "success", "data": {"id": True}}), "not a positive integer"),
    ],
)
async def test_a_bad_answer_to_create_is_a_clear_error(reply: Reply, message: str) -> None:
    with pytest.raises(SfuError, match=message):
        await JanusSession.create(URL, transport=fake_janus(reply))


async def test_a_plugin_refusal_names_janus_code_and_reason() -> None:
    def post(request: dict[str, object]) -> httpx.Response:
        if request["janus"] == "create":
            return created(request)
        if request["janus"] == "attach":
            return httpx.Response(200, json={"janus": "success", "data": {"id": 12}})
        error = {"videoroom": "event", "error_code": 426, "error": "No such room"}
        data = {"plugin": "janus.plugin.videoroom", "data": error}
        return httpx.Response(200, json={"janus": "success", "plugindata": data})

    session = await JanusSession.create(URL, transport=fake_janus(post))
    try:
        handle = await session.attach("janus.plugin.videoroom")
        with pytest.raises(SfuError, match=r"'No such room' \(code 426\)"):
            await handle.request({"request": "exists", "room": 1})
    finally:
        await session.destroy()
        await session.destroy()


async def test_a_malformed_event_batch_fails_the_session_and_what_waits_on_it() -> None:
    failures: list[SfuError] = []
    failed = asyncio.Event()

    def on_failure(error: SfuError) -> None:
        failures.append(error)
        failed.set()

    session = await JanusSession.create(URL, transport=fake_janus(created, polls=[[1] * 11]))
    session.on_failure = on_failure  # before the poll task first runs
    try:
        await asyncio.wait_for(failed.wait(), 5)
        assert "short list of objects" in str(failures[0])
        with pytest.raises(SfuError, match="short list"):
            await session.attach("janus.plugin.videoroom")
    finally:
        await session.destroy()


@pytest.mark.parametrize(
    ("jsep", "message"),
    [
        ("v=0", "not an object"),
        ({"type": "pranswer", "sdp": "v=0\r\n"}, "of type"),
        ({"type": "offer"}, "without an SDP"),
        ({"type": "offer", "sdp": "hello"}, "without an SDP"),
        ({"type": "offer", "sdp": "v=0\r\n" + "a" * MAX_SDP}, f"limit {MAX_SDP}"),
    ],
)
def test_a_bad_jsep_is_refused(jsep: object, message: str) -> None:
    with pytest.raises(SfuError, match=message):
        parse_jsep(jsep)


@pytest.mark.parametrize(
    "sdp",
    [
        "v=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:x\r\n",
    ],
)
async def test_an_sdp_aiortc_cannot_use_is_a_clear_error(sdp: str) -> None:
    connection = RTCPeerConnection()
    try:
        with pytest.raises(SfuError, match="Janus sent an SDP offer"):
            await sfu._apply(connection, Jsep("offer", sdp))
    finally:
        await connection.close()


async def test_the_session_is_kept_alive_and_destroyed_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(janus, "KEEPALIVE_EVERY", 0.01)
    seen: list[str] = []
    kept_alive = asyncio.Event()

    def post(request: dict[str, object]) -> httpx.Response:
        seen.append(str(request["janus"]))
        if request["janus"] == "keepalive":
            kept_alive.set()
            return httpx.Response(200, json={"janus": "ack"})
        return created(request)

    session = await JanusSession.create(URL, transport=fake_janus(post))
    try:
        await asyncio.wait_for(kept_alive.wait(), 5)
    finally:
        await session.destroy()
    assert seen[0] == "create" and seen[-1] == "destroy"


async def test_a_janus_that_accepts_but_never_answers_is_an_error_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(janus, "REQUEST_TIMEOUT", 0.3)
    connected: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(writer)  # held open, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(SfuError, match="did not answer in time"):
            await JanusSession.create(f"http://127.0.0.1:{port}/janus")
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        for writer in connected:
            writer.close()
        server.close()
        await server.wait_closed()


def test_publisher_lists_are_checked_and_leave_out_ourselves() -> None:
    assert sfu._publisher_ids([{"id": 3, "display": "c"}, {"id": 7}], own_id=7) == [3]
    for bad in ("3", [3], [{"id": "3"}], [{"display": "x"}], [{"id": 1}] * 1000):
        with pytest.raises(SfuError):
            sfu._publisher_ids(bad, own_id=7)
