"""Attacks on the edge (sizes, bodies, connections, HTTP/2 frames) against a
real `crab serve`, each with the exact answer the attacker gets and a
bystander who keeps chatting."""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import h2.events
import h2.exceptions
import psutil
import pytest
from grpclib import GRPCError
from grpclib.const import Status
from h2.errors import ErrorCodes

from crab.client.connection import CrabClient
from crab.core.api.requests import RequestCodec
from crab.proto.crab import v1 as pb
from tests.helpers.chats import Bystander, new_user
from tests.helpers.process import CrabProcess
from tests.helpers.server import PASSWORD
from tests.integration.hostile.raw import RawH2, grpc_body

pytestmark = pytest.mark.slow  # a real crab serve process

# Every crab method a stranger can name, with its request type.
METHODS = {
    "/crab.v1.Accounts/SignUp": pb.SignUpRequest,
    "/crab.v1.Accounts/SignIn": pb.SignInRequest,
    "/crab.v1.Accounts/Refresh": pb.RefreshRequest,
    "/crab.v1.Accounts/SignOut": pb.SignOutRequest,
    "/crab.v1.Accounts/WhoAmI": pb.Empty,
    "/crab.v1.Users/GetUser": pb.GetUserRequest,
    "/crab.v1.Users/SearchUsers": pb.SearchUsersRequest,
    "/crab.v1.Chats/MyChats": pb.Empty,
    "/crab.v1.Chats/GetChat": pb.ChatRequest,
    "/crab.v1.Chats/CreateRoom": pb.CreateRoomRequest,
    "/crab.v1.Chats/LeaveChat": pb.ChatRequest,
    "/crab.v1.Chats/GetMessages": pb.GetMessagesRequest,
    "/crab.v1.Chats/MarkRead": pb.MarkReadRequest,
    "/crab.v1.Invites/MyInvites": pb.Empty,
    "/crab.v1.Invites/InviteToRoom": pb.RoomInviteRequest,
    "/crab.v1.Invites/InviteToDirect": pb.DirectInviteRequest,
    "/crab.v1.Invites/AnswerInvite": pb.AnswerInviteRequest,
    "/crab.v1.Session/Connect": pb.ClientFrame,
}
REFUSED = {Status.INTERNAL.value, Status.UNKNOWN.value}


def _statuses(raw: RawH2, stream_id: int) -> tuple[int, str] | None:
    for event in raw.events:
        if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
            if event.stream_id != stream_id:
                continue
            headers = dict(event.headers)
            if "grpc-status" in headers:
                return int(headers["grpc-status"]), headers.get("grpc-message", "")
        if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
            return -1, "reset"
    return None


async def unary(raw: RawH2, method: str, body: bytes, token: str | None = None) -> tuple[int, str]:
    """One call with a hand-made body; its grpc-status and message."""
    stream_id = raw.start(method, token)
    sent = 0
    while sent < len(body):  # as much as the windows let through
        window = min(raw.h2.local_flow_control_window(stream_id), 16384)
        if window <= 0:
            if _statuses(raw, stream_id) is not None or not await raw.read_some(2.0):
                break
            continue
        try:
            raw.h2.send_data(stream_id, body[sent : sent + window])
        except h2.exceptions.StreamClosedError:
            break  # answered (and closed) before the body was all sent
        sent += window
        await raw.flush()
    if sent >= len(body) and _statuses(raw, stream_id) is None:
        with contextlib.suppress(Exception):
            raw.h2.end_stream(stream_id)
        await raw.flush()
    while (found := _statuses(raw, stream_id)) is None:
        assert await raw.read_some(10.0), "the server closed the connection"
    return found


def unknown_fields(size: int) -> bytes:
    """Many two-byte fields of a number no message has (field 1000, varint)."""
    return b"\xc0\x3e\x01" * (size // 3)


async def test_a_request_declaring_100_mb_is_refused_before_it_is_read(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    server = psutil.Process(hostile_server.pid)
    before = server.memory_info().rss
    raw = await RawH2.open(hostile_server.port)
    body = grpc_body(b"\x0a\x05alice" + b"\x00" * (4 * 1024 * 1024), declared=100 * 1024 * 1024)
    status, message = await unary(raw, "/crab.v1.Accounts/SignIn", body)
    assert status == Status.RESOURCE_EXHAUSTED.value
    assert "this server takes at most 65536" in message
    raw.close()
    # Nothing near the declared size was buffered.
    assert server.memory_info().rss - before < 32 * 1024 * 1024
    await bystander.check()


async def test_a_request_over_the_limit_from_a_normal_client(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    client = CrabClient("127.0.0.1", hostile_server.port)
    with pytest.raises(GRPCError) as refused:
        await client.sign_in("alice", "x" * 100_000)
    assert refused.value.status == Status.RESOURCE_EXHAUSTED
    # A stream frame over the limit ends that stream only.
    user = await new_user(hostile_server)
    session = user.session()
    await session.__aenter__()
    assert session.stream is not None
    await session.stream.send_message(
        pb.ClientFrame(send=pb.SendMessage(chat_id=1, client_message_id="x", text="y" * 70_000))
    )
    with pytest.raises(GRPCError) as ended:
        await session.recv()
    assert ended.value.status == Status.RESOURCE_EXHAUSTED
    with contextlib.suppress(GRPCError):
        await session.__aexit__(None, None, None)
    client.close()
    user.close()
    await bystander.check()


async def test_unknown_fields_are_dropped_not_kept(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    # 60 KB of tiny unknown fields: under the size limit, costs what it weighs.
    raw = await RawH2.open(hostile_server.port)
    for _ in range(3):  # fewer than the failures allowed before sign-ins back off
        sign_in = bytes(pb.SignInRequest(username=bystander.alice.user.username, password="no"))
        body = grpc_body(sign_in + unknown_fields(60_000))
        status, message = await unary(raw, "/crab.v1.Accounts/SignIn", body)
        assert (status, message) == (Status.UNAUTHENTICATED.value, "wrong username or password")
    # The real password behind the same padding signs in: the padding is ignored.
    sign_in = bytes(pb.SignInRequest(username=bystander.alice.user.username, password=PASSWORD))
    status, _ = await unary(
        raw, "/crab.v1.Accounts/SignIn", grpc_body(unknown_fields(30_000) + sign_in)
    )
    assert status == Status.OK.value
    raw.close()
    await bystander.check()


def test_the_request_codec_keeps_no_unknown_field() -> None:
    """betterproto2 alone keeps every unknown field (appending bytes: the
    quadratic cost); the codec hands it a body without them."""
    body = bytes(pb.SignInRequest(username="alice", password="pw")) + unknown_fields(30_000)
    assert pb.SignInRequest.parse(body)._unknown_fields  # what the codec protects from
    decoded = RequestCodec(64 * 1024, 10.0).decode(body, pb.SignInRequest)
    assert (decoded.username, decoded.password, decoded._unknown_fields) == ("alice", "pw", b"")


def _garbage(rng: random.Random, valid: bytes) -> bytes:
    match rng.randrange(4):
        case 0:  # random bytes
            return rng.randbytes(rng.randrange(1, 200))
        case 1:  # a valid body with bytes flipped
            body = bytearray(valid or b"\x08\x01")
            for _ in range(rng.randrange(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            return bytes(body)
        case 2:  # cut short
            return valid[: rng.randrange(len(valid))] if valid else b"\x0a"
        case _:  # every field number 1..12 with a random wire type
            return b"".join(
                bytes([(n << 3) | rng.choice((0, 1, 2, 5))]) + rng.randbytes(rng.randrange(0, 9))
                for n in range(1, 13)
            )


def _valid(message_type: type, chat_id: int, user_id: int) -> bytes:
    samples = {
        pb.SignUpRequest: pb.SignUpRequest(username="mallory", password="p" * 12),
        pb.SignInRequest: pb.SignInRequest(username="mallory", password="p" * 12),
        pb.ChatRequest: pb.ChatRequest(chat_id=chat_id),
        pb.CreateRoomRequest: pb.CreateRoomRequest(name="lair"),
        pb.GetMessagesRequest: pb.GetMessagesRequest(chat_id=chat_id, limit=5),
        pb.MarkReadRequest: pb.MarkReadRequest(chat_id=chat_id, message_id=1),
        pb.RoomInviteRequest: pb.RoomInviteRequest(chat_id=chat_id, user_id=user_id),
        pb.DirectInviteRequest: pb.DirectInviteRequest(user_id=user_id),
        pb.AnswerInviteRequest: pb.AnswerInviteRequest(invite_id=1, accept=True),
        pb.SearchUsersRequest: pb.SearchUsersRequest(query="al"),
        pb.GetUserRequest: pb.GetUserRequest(user_id=user_id),
        pb.ClientFrame: pb.ClientFrame(
            send=pb.SendMessage(chat_id=chat_id, client_message_id="m1", text="hi")
        ),
    }
    found = samples.get(message_type)
    return bytes(found) if found is not None else b""


async def test_malformed_bodies_get_a_clear_status_never_internal(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    mallory = await new_user(hostile_server)
    assert mallory.tokens is not None
    token = mallory.tokens.access_token
    lair = await mallory.chats.create_room(
        pb.CreateRoomRequest(name="lair"), metadata=mallory.metadata
    )
    rng = random.Random(10)
    seen: Counter[int] = Counter()
    raw = await RawH2.open(hostile_server.port)
    for case in range(600):
        method = rng.choice(sorted(METHODS))
        body = _garbage(rng, _valid(METHODS[method], lair.id, bystander.bob.user.id))
        if method == "/crab.v1.Session/Connect":
            # A stream: a valid Resume first would wait for more; garbage alone.
            body = body or b"\x12\x01"
        status, message = await unary(raw, method, grpc_body(body), token)
        seen[status] += 1
        assert status not in REFUSED, f"case {case}: {method} {body!r} -> {status} {message}"
        if case % 100 == 0:
            await bystander.check()
    raw.close()
    assert seen[Status.INVALID_ARGUMENT.value] > 0
    assert "Traceback" not in hostile_server.log
    # One short line now and then, not one per bad request.
    assert 1 <= hostile_server.log.count("requests that do not decode") < 10
    await bystander.check()
    mallory.close()


async def test_a_field_of_the_wrong_wire_type_never_fails_anyone_else(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    """LeaveChat's chat_id as bytes once reached the worker and failed the
    batch it was in: other users' sends answered INTERNAL."""
    mallory = await new_user(hostile_server)
    assert mallory.tokens is not None
    raw = await RawH2.open(hostile_server.port)

    async def leave_badly() -> list[tuple[int, str]]:
        return [
            await unary(
                raw,
                "/crab.v1.Chats/LeaveChat",
                grpc_body(b"\x0a\x03abc"),
                mallory.tokens.access_token,
            )  # type: ignore[union-attr]
            for _ in range(50)
        ]

    async def send_many() -> list[pb.ServerFrame]:
        async with bystander.alice.session() as mine:
            ids = [await mine.send(bystander.room, f"m{i}") for i in range(100)]
            return list(
                await mine.collect(
                    lambda f: f.ack is not None or f.send_error is not None, len(ids), 30
                )
            )

    answers, frames = await asyncio.gather(leave_badly(), send_many())
    assert {status for status, _ in answers} == {Status.NOT_FOUND.value}
    assert all(f.ack is not None for f in frames), [f.send_error for f in frames if f.send_error]
    raw.close()
    mallory.close()


async def test_a_ping_flood_gets_goaway(hostile_server: CrabProcess, bystander: Bystander) -> None:
    raw = await RawH2.open(hostile_server.port)
    for i in range(5_000):
        raw.h2.ping(i.to_bytes(8, "big"))
        if i % 500 == 0:
            await raw.flush()
    await raw.flush()
    await raw.wait_closed()
    raw.close()
    assert raw.goaway_code == ErrorCodes.ENHANCE_YOUR_CALM
    await bystander.check()


async def test_rapid_reset_gets_goaway(hostile_server: CrabProcess, bystander: Bystander) -> None:
    raw = await RawH2.open(hostile_server.port)
    with contextlib.suppress(Exception):  # h2 refuses to go on once GOAWAY arrives
        for i in range(2_000):
            stream_id = raw.start("/crab.v1.Accounts/SignIn")
            raw.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
            if i % 100 == 0:
                await raw.flush()
                await asyncio.sleep(0)
    await raw.flush()
    await raw.wait_closed()
    raw.close()
    assert raw.goaway_code == ErrorCodes.ENHANCE_YOUR_CALM
    await bystander.check()


@pytest.fixture
def quick_deadlines_server(tmp_path: Path) -> Iterator[CrabProcess]:
    server = CrabProcess.start(
        tmp_path / "data", "--handshake-timeout", "1", "--unauthenticated-timeout", "3"
    )
    try:
        yield server
    finally:
        server.stop()


async def test_silent_and_half_open_connections_are_closed(
    quick_deadlines_server: CrabProcess,
) -> None:
    port = quick_deadlines_server.port
    silent = await RawH2.open(port, preface=False)  # TCP only
    preface_only = await RawH2.open(port)  # the HTTP/2 preface, then nothing
    signed_out = await RawH2.open(port)  # one public call, then nothing
    status, _ = await unary(
        signed_out,
        "/crab.v1.Accounts/SignIn",
        grpc_body(bytes(pb.SignInRequest(username="nobody", password="p" * 10))),
    )
    assert status == Status.UNAUTHENTICATED.value
    user = await new_user(quick_deadlines_server)  # signed in, on a live stream
    async with user.session() as live:
        for raw in (silent, preface_only, signed_out):
            await raw.wait_closed()
            raw.close()
            assert raw.closed_by_server
        # The signed-in connection is still there and working.
        await user.chats.my_chats(pb.Empty(), metadata=user.metadata)
        assert live.ready is not None
    user.close()


async def test_a_request_that_trickles_in_is_cut_off(quick_deadlines_server: CrabProcess) -> None:
    raw = await RawH2.open(quick_deadlines_server.port)
    headers_only = raw.start("/crab.v1.Accounts/SignIn")
    half_sent = raw.start("/crab.v1.Accounts/SignIn")
    raw.h2.send_data(half_sent, grpc_body(b"\x0a\x05alice", declared=100))
    await raw.flush()
    for stream_id in (headers_only, half_sent):
        while (found := _statuses(raw, stream_id)) is None:
            assert await raw.read_some(10.0)
        assert found == (Status.DEADLINE_EXCEEDED.value, "the request did not arrive in time")
    raw.close()


@pytest.fixture
def few_files_server(tmp_path: Path) -> Iterator[CrabProcess]:
    server = CrabProcess.start(tmp_path / "data", open_files=1024)
    try:
        yield server
    finally:
        server.stop()


async def test_a_connection_flood_cannot_starve_the_database(few_files_server: CrabProcess) -> None:
    """With 1,024 open files, 1,100 idle connections made SQLite fail to
    open its file: every call of every user answered INTERNAL."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    server = few_files_server
    alice = await new_user(server)
    bob = await new_user(server)
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="ops"), metadata=alice.metadata)
    flood: list[RawH2] = []
    try:
        for _ in range(1_100):
            flood.append(await RawH2.open(server.port))
        # Those over the caps were closed at once.
        results = await asyncio.gather(*(raw.read_some(2.0) for raw in flood))
        assert results.count(False) >= 1_100 - 768
        # Everyone already connected keeps working: no INTERNAL anywhere.
        for _ in range(3):
            await alice.chats.my_chats(pb.Empty(), metadata=alice.metadata)
            await bob.users.search_users(pb.SearchUsersRequest(query="u"), metadata=bob.metadata)
            async with alice.session() as mine:
                await mine.send(room.id, "still fine")
                await mine.wait_for(lambda f: f.ack is not None)
        assert "unable to open database file" not in server.log
        assert "connection refused" in server.log
    finally:
        for raw in flood:
            raw.close()
        alice.close()
        bob.close()
