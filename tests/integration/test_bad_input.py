"""Every bad input gets a clear error and changes nothing, through a real
server and real clients. RPCs fail with a gRPC status; a bad send on the
session stream gets a send_error frame and the stream lives on."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, SessionStream
from crab.config import Limits
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.server import PASSWORD, ClientFactory, NewDatabase, make_settings

UNKNOWN = 999_999
_names = itertools.count(1)


async def refused(call: Awaitable[object]) -> GRPCError:
    with pytest.raises(GRPCError) as err:
        await call
    assert err.value.message, "an error must say what was wrong"
    return err.value


Who = CrabClient | int  # a person, or a bare (perhaps unknown) user id
Where = pb.Chat | int  # a chat, or a bare (perhaps unknown) chat id


def uid(who: Who) -> int:
    return who.user.id if isinstance(who, CrabClient) else who


def cid(where: Where) -> int:
    return where.id if isinstance(where, pb.Chat) else where


async def create_room(client: CrabClient, name: str) -> pb.Chat:
    return await client.chats.create_room(pb.CreateRoomRequest(name=name), metadata=client.metadata)


async def to_room(client: CrabClient, chat: Where, whom: Who) -> pb.Invite:
    return await client.invites.invite_to_room(
        pb.RoomInviteRequest(chat_id=cid(chat), user_id=uid(whom)), metadata=client.metadata
    )


async def to_direct(client: CrabClient, whom: Who) -> pb.Invite:
    return await client.invites.invite_to_direct(
        pb.DirectInviteRequest(user_id=uid(whom)), metadata=client.metadata
    )


async def answer(client: CrabClient, invite_id: int, accept: bool = True) -> pb.InviteAnswer:
    return await client.invites.answer_invite(
        pb.AnswerInviteRequest(invite_id=invite_id, accept=accept), metadata=client.metadata
    )


def get_chat(who: CrabClient, chat: Where) -> Awaitable[pb.ChatDetail]:
    return who.chats.get_chat(pb.ChatRequest(chat_id=cid(chat)), metadata=who.metadata)


def leave(who: CrabClient, chat: Where) -> Awaitable[pb.Empty]:
    return who.chats.leave_chat(pb.ChatRequest(chat_id=cid(chat)), metadata=who.metadata)


def mark_read(who: CrabClient, chat: Where, message_id: int) -> Awaitable[pb.Empty]:
    request = pb.MarkReadRequest(chat_id=cid(chat), message_id=message_id)
    return who.chats.mark_read(request, metadata=who.metadata)


def history(who: CrabClient, chat: Where, limit: int = 0) -> Awaitable[pb.MessagePage]:
    request = pb.GetMessagesRequest(chat_id=cid(chat), limit=limit)
    return who.chats.get_messages(request, metadata=who.metadata)


def get_user(who: CrabClient, user_id: int) -> Awaitable[pb.User]:
    return who.users.get_user(pb.GetUserRequest(user_id=user_id), metadata=who.metadata)


def find(who: CrabClient, query: str) -> Awaitable[pb.UserList]:
    return who.users.search_users(pb.SearchUsersRequest(query=query), metadata=who.metadata)


async def texts(client: CrabClient, chat: Where) -> list[str]:
    return [m.text for m in reversed((await history(client, chat)).messages)]


async def search(client: CrabClient, query: str) -> list[str]:
    return [u.username for u in (await find(client, query)).users]


# ---- RPCs: one fixed world, a table of bad calls ----------------------------


@dataclass
class World:
    """alice owns `room`; bob joined it (his invite is answered); carol has a
    pending room invite; dave a pending personal invite from alice; alice and
    erin share an accepted personal conversation, `direct`."""

    alice: CrabClient
    bob: CrabClient
    carol: CrabClient
    dave: CrabClient
    erin: CrabClient
    room: pb.Chat
    direct: pb.Chat
    answered_invite: int
    carol_invite: int

    @property
    def everyone(self) -> list[CrabClient]:
        return [self.alice, self.bob, self.carol, self.dave, self.erin]


@pytest.fixture
async def world(connect: ClientFactory) -> World:
    alice, bob, carol, dave, erin = [
        await connect(n) for n in ("alice", "bob", "carol", "dave", "erin")
    ]
    room = await create_room(alice, "team")
    bobs = await to_room(alice, room, bob)
    await answer(bob, bobs.id)
    carols = await to_room(alice, room, carol)
    await to_direct(alice, dave)
    direct = (await answer(erin, (await to_direct(alice, erin)).id)).chat
    assert direct is not None
    return World(alice, bob, carol, dave, erin, room, direct, bobs.id, carols.id)


async def snapshot(w: World) -> list[object]:
    """Everything each person can see: invites, chats, and their members."""
    state: list[object] = []
    for c in w.everyone:
        state.append(await c.invites.my_invites(pb.Empty(), metadata=c.metadata))
        mine = await c.chats.my_chats(pb.Empty(), metadata=c.metadata)
        state.append(mine)
        for s in mine.chats:
            assert s.chat is not None
            state.append(await get_chat(c, s.chat))
    return state


Call = Callable[[World], Awaitable[object]]
NOT_FOUND, EXISTS, INVALID = Status.NOT_FOUND, Status.ALREADY_EXISTS, Status.INVALID_ARGUMENT
PRECONDITION, DENIED = Status.FAILED_PRECONDITION, Status.PERMISSION_DENIED

RPC_CASES: list[tuple[str, Call, Status]] = [
    # invites
    ("room-invite-unknown-user", lambda w: to_room(w.alice, w.room, UNKNOWN), NOT_FOUND),
    ("direct-invite-unknown-user", lambda w: to_direct(w.alice, UNKNOWN), NOT_FOUND),
    ("room-invite-self", lambda w: to_room(w.alice, w.room, w.alice), PRECONDITION),
    ("direct-invite-self", lambda w: to_direct(w.alice, w.alice), PRECONDITION),
    ("room-invite-member", lambda w: to_room(w.alice, w.room, w.bob), EXISTS),
    ("room-invite-member-by-member", lambda w: to_room(w.bob, w.room, w.alice), EXISTS),
    ("room-invite-pending-twice", lambda w: to_room(w.alice, w.room, w.carol), EXISTS),
    ("room-invite-pending-other-inviter", lambda w: to_room(w.bob, w.room, w.carol), EXISTS),
    ("direct-invite-pending-twice", lambda w: to_direct(w.alice, w.dave), EXISTS),
    ("direct-invite-pending-reverse", lambda w: to_direct(w.dave, w.alice), EXISTS),
    ("direct-invite-after-accept", lambda w: to_direct(w.alice, w.erin), EXISTS),
    ("direct-invite-after-accept-reverse", lambda w: to_direct(w.erin, w.alice), EXISTS),
    ("room-invite-into-direct", lambda w: to_room(w.alice, w.direct, w.carol), PRECONDITION),
    ("room-invite-by-outsider", lambda w: to_room(w.dave, w.room, w.erin), NOT_FOUND),
    ("room-invite-unknown-chat", lambda w: to_room(w.alice, UNKNOWN, w.dave), NOT_FOUND),
    ("answer-unknown-invite", lambda w: answer(w.bob, UNKNOWN), NOT_FOUND),
    ("answer-twice", lambda w: answer(w.bob, w.answered_invite), NOT_FOUND),
    ("answer-twice-reject", lambda w: answer(w.bob, w.answered_invite, accept=False), NOT_FOUND),
    ("answer-own-invite", lambda w: answer(w.alice, w.carol_invite), DENIED),
    ("answer-others-invite", lambda w: answer(w.dave, w.carol_invite), NOT_FOUND),
    # rooms
    ("room-name-empty", lambda w: create_room(w.alice, ""), INVALID),
    ("room-name-blank", lambda w: create_room(w.alice, "   "), INVALID),
    ("room-name-esc", lambda w: create_room(w.alice, "\x1b[31mred"), INVALID),
    ("room-name-bel", lambda w: create_room(w.alice, "ding\x07"), INVALID),
    ("room-name-nul", lambda w: create_room(w.alice, "nul\x00"), INVALID),
    ("room-name-c1", lambda w: create_room(w.alice, "csi\x9b2J"), INVALID),
    ("room-name-newline", lambda w: create_room(w.alice, "two\nlines"), INVALID),
    ("room-name-too-long", lambda w: create_room(w.alice, "x" * 65), INVALID),
    ("get-chat-unknown", lambda w: get_chat(w.alice, UNKNOWN), NOT_FOUND),
    ("get-chat-outsider", lambda w: get_chat(w.dave, w.room), NOT_FOUND),
    ("leave-unknown", lambda w: leave(w.alice, UNKNOWN), NOT_FOUND),
    ("leave-not-member", lambda w: leave(w.carol, w.room), NOT_FOUND),
    ("mark-read-outsider", lambda w: mark_read(w.dave, w.room, 1), NOT_FOUND),
    # reads
    ("messages-limit-201", lambda w: history(w.alice, w.room, limit=201), INVALID),
    ("messages-outsider", lambda w: history(w.dave, w.room), NOT_FOUND),
    ("get-user-unknown", lambda w: get_user(w.alice, UNKNOWN), NOT_FOUND),
    ("search-too-long", lambda w: find(w.alice, "x" * 65), INVALID),
]


@pytest.mark.parametrize(
    ("call", "status"), [pytest.param(c, s, id=name) for name, c, s in RPC_CASES]
)
async def test_bad_rpc_is_refused_and_changes_nothing(
    world: World, call: Call, status: Status
) -> None:
    before = await snapshot(world)
    assert (await refused(call(world))).status == status
    assert await snapshot(world) == before


# ---- sign up -----------------------------------------------------------------

SIGN_UP_CASES = [
    ("too-short", "ab", PASSWORD, ""),
    ("too-long", "a" * 33, PASSWORD, ""),
    ("empty", "", PASSWORD, ""),
    ("space", "bad name", PASSWORD, ""),
    ("accent", "ééé", PASSWORD, ""),
    ("accent-mixed", "josé", PASSWORD, ""),
    ("punctuation", "semi;colon", PASSWORD, ""),
    ("esc-in-name", "esc\x1bname", PASSWORD, ""),
    ("short-password", "okname", "seven77", ""),
    ("long-password", "okname", "x" * 1025, ""),
    ("display-esc", "okname", PASSWORD, "\x1b[2Jgotcha"),
    ("display-bel", "okname", PASSWORD, "ding\x07"),
    ("display-c1", "okname", PASSWORD, "al\x9bpacino"),
    ("display-newline", "okname", PASSWORD, "two\nlines"),
    ("display-too-long", "okname", PASSWORD, "x" * 65),
]


@pytest.mark.parametrize(
    ("username", "password", "display_name"),
    [pytest.param(u, p, d, id=i) for i, u, p, d in SIGN_UP_CASES],
)
async def test_bad_sign_up_is_refused_and_creates_nobody(
    connect: ClientFactory, username: str, password: str, display_name: str
) -> None:
    probe = await connect("probe")
    newcomer = await connect(sign_up=False)
    err = await refused(newcomer.sign_up(username, password, display_name))
    assert err.status == Status.INVALID_ARGUMENT
    assert newcomer.tokens is None
    if username.strip():
        assert await search(probe, username.strip().lower()[:64]) == []
    err = await refused(newcomer.sign_in(username, password))
    assert err.status == Status.UNAUTHENTICATED


async def test_usernames_are_lower_cased_and_unique_ignoring_case(
    connect: ClientFactory,
) -> None:
    first = await connect(sign_up=False)
    assert (await first.sign_up("Alice", PASSWORD)).username == "alice"
    for taken in ("alice", "ALICE", "  aLiCe  "):
        other = await connect(sign_up=False)
        assert (await refused(other.sign_up(taken, PASSWORD))).status == Status.ALREADY_EXISTS
    assert await search(first, "alice") == ["alice"]
    again = await connect(sign_up=False)
    assert (await again.sign_in("ALICE", PASSWORD)).id == first.user.id


# ---- the session stream: bad sends -----------------------------------------------


async def raw_send(live: SessionStream, chat_id: int, client_message_id: str, text: str) -> None:
    """Sends exactly what it is given (the client helper fills in an id)."""
    assert live.stream is not None
    send = pb.SendMessage(chat_id=chat_id, client_message_id=client_message_id, text=text)
    await live.stream.send_message(pb.ClientFrame(send=send))


def is_answer(frame: pb.ServerFrame) -> bool:
    return frame.ack is not None or frame.send_error is not None


BAD_TEXT = [
    ("empty", ""),
    ("spaces", "   "),
    ("only-newlines-and-tabs", " \n\t\n "),
    ("over-4000", "x" * 4001),
    ("esc-clear-screen", "\x1b[2J"),
    ("esc-in-text", "hello \x1b[31mred"),
    ("osc-title", "\x1b]0;pwned\x07"),
    ("nul", "nul\x00byte"),
    ("bel", "ding\x07"),
    ("backspace", "over\x08write"),
    ("carriage-return", "fake\rline"),
    ("del", "del\x7f"),
    ("c1-csi", "csi\x9b2J"),
    ("c1-nel", "next\x85line"),
]
SEND_CASES = [(name, "room", "cid-1", text, "INVALID_ARGUMENT") for name, text in BAD_TEXT] + [
    ("missing-client-id", "room", "", "hello", "INVALID_ARGUMENT"),
    ("client-id-too-long", "room", "c" * 65, "hello", "INVALID_ARGUMENT"),
    ("client-id-esc", "room", "id\x1b", "hello", "INVALID_ARGUMENT"),
    ("chat-id-zero", "zero", "cid-1", "hello", "INVALID_ARGUMENT"),
    ("unknown-chat", "unknown", "cid-1", "hello", "NOT_FOUND"),
    ("not-a-member", "foreign", "cid-1", "hello", "NOT_FOUND"),
]


@pytest.mark.parametrize(
    ("target", "client_message_id", "text", "code"),
    [pytest.param(t, c, x, code, id=i) for i, t, c, x, code in SEND_CASES],
)
async def test_bad_send_gets_send_error_and_stores_nothing(
    connect: ClientFactory, target: str, client_message_id: str, text: str, code: str
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "mine")
    foreign = await create_room(bob, "theirs")
    chat_id = {"room": room.id, "zero": 0, "unknown": UNKNOWN, "foreign": foreign.id}[target]
    async with alice.session() as live:
        await raw_send(live, chat_id, client_message_id, text)
        frame = await live.wait_for(is_answer)
        error = frame.send_error
        assert error is not None, frame
        assert error.code == code and error.message
        assert error.client_message_id == client_message_id and error.chat_id == chat_id
        # The stream lives on, and the refused send took no message id.
        cid = await live.send(room.id, "still here")
        frame = await live.wait_for(is_answer)
        assert frame.ack is not None and frame.ack.client_message_id == cid
        assert frame.ack.message.id == 1
    assert await texts(alice, room.id) == ["still here"]
    assert await texts(bob, foreign.id) == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("line one\nline two\n", id="newlines"),
        pytest.param("name\tvalue\t", id="tabs"),
        pytest.param("  padded  ", id="surrounding-spaces"),
        pytest.param("crab 🦀 ünïcödé ∑", id="unicode"),
        pytest.param("x" * 4000, id="exactly-4000"),
    ],
)
async def test_allowed_text_is_stored_verbatim(connect: ClientFactory, text: str) -> None:
    alice = await connect("alice")
    room = await create_room(alice, "mine")
    async with alice.session() as live:
        await live.send(room.id, text)
        frame = await live.wait_for(is_answer)
        assert frame.ack is not None and frame.ack.message.text == text
    assert await texts(alice, room.id) == [text]


# ---- servers with other limits -----------------------------------------------------

Serve = Callable[[Limits], Awaitable[ClientFactory]]


@pytest.fixture
async def serve(tmp_path: Path, new_database: NewDatabase) -> AsyncIterator[Serve]:
    """serve(limits) -> a client factory for a fresh server with those limits."""
    apps: list[Crab] = []
    clients: list[CrabClient] = []

    async def start(limits: Limits) -> ClientFactory:
        data = tmp_path / f"crab{len(apps)}"
        settings = make_settings(data, limits=limits, database_url=await new_database())
        app = await Crab.open(settings)
        apps.append(app)
        await app.start_worker()
        await app.start_server()

        async def make(name: str = "user") -> CrabClient:
            client = CrabClient("127.0.0.1", app.port)
            clients.append(client)
            await client.sign_up(f"{name}{next(_names)}", PASSWORD)
            return client

        return make

    yield start
    for client in clients:
        client.close()
    for app in apps:
        await app.close()


async def test_smaller_message_limit_is_enforced(serve: Serve) -> None:
    connect = await serve(Limits(max_message_chars=10, send_rate=10_000, send_burst=10_000))
    alice = await connect("alice")
    room = await create_room(alice, "tiny")
    async with alice.session() as live:
        await live.send(room.id, "0123456789a")
        frame = await live.wait_for(is_answer)
        assert frame.send_error is not None and frame.send_error.code == "INVALID_ARGUMENT"
        assert "10" in frame.send_error.message
        await live.send(room.id, "0123456789")
        frame = await live.wait_for(is_answer)
        assert frame.ack is not None and frame.ack.message.id == 1
    assert await texts(alice, room.id) == ["0123456789"]


async def test_rate_limit_refuses_the_fourth_rapid_send(serve: Serve) -> None:
    connect = await serve(Limits(send_rate=1, send_burst=3))
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "fast")
    await answer(bob, (await to_room(alice, room, bob)).id)
    async with alice.session() as live:
        cids = [await live.send(room.id, f"message {i}") for i in range(4)]
        answers = await live.collect(is_answer, 4)
        acked = {f.ack.client_message_id for f in answers if f.ack is not None}
        errors = [f.send_error for f in answers if f.send_error is not None]
        assert acked == set(cids[:3])
        assert len(errors) == 1 and errors[0].client_message_id == cids[3]
        assert errors[0].code == "RESOURCE_EXHAUSTED" and errors[0].chat_id == room.id
        # Still alive: another user's message (own bucket) reaches the stream.
        async with bob.session() as bob_live:
            await bob_live.send(room.id, "from bob")
            got = await live.wait_for(
                lambda f: f.message is not None and f.message.sender.id == bob.user.id
            )
            assert got.message.text == "from bob" and got.message.id == 4
    assert await texts(alice, room.id) == ["message 0", "message 1", "message 2", "from bob"]
