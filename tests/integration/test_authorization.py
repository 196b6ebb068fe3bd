"""Who may call what. Every authenticated RPC refuses every bad credential
with UNAUTHENTICATED; signing out ends tokens, refresh tokens and streams;
and an outsider cannot tell someone else's chat or invite from one that
does not exist."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from grpclib import GRPCError
from grpclib.const import Cardinality, Status
from joserfc import jwt
from joserfc.jwk import OctKey

from crab.client.connection import CONNECT, CrabClient, SessionStream
from crab.core.api.auth import PUBLIC_METHODS
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.server import PASSWORD, ClientFactory

Metadata = dict[str, str]
MISSING = 999_999  # an id no chat or invite has


# ---- helpers ---------------------------------------------------------------


def rpc(client: CrabClient, path: str, request: Any, metadata: Metadata) -> Awaitable[Any]:
    """Calls "Service/Method" (e.g. "Chats/GetChat") through the client's stub;
    "Session/Connect" opens the stream and sends `request` as its first frame."""
    service, method = path.split("/")
    if path == "Session/Connect":
        return open_stream(client, request, metadata)
    stub = getattr(client, service.lower())
    return getattr(stub, re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower())(
        request, metadata=metadata
    )


async def open_stream(client: CrabClient, frame: pb.ClientFrame, metadata: Metadata) -> None:
    """Ready when let in; a refused stream raises GRPCError at the first read."""
    async with client.channel.request(
        CONNECT, Cardinality.STREAM_STREAM, pb.ClientFrame, pb.ServerFrame, metadata=metadata
    ) as stream:
        await stream.send_message(frame)
        first = await stream.recv_message()
        assert first is not None and first.ready is not None
        await stream.cancel()


async def outcome(call: Awaitable[object]) -> tuple[Status, str]:
    """(status, details message) of a call; (OK, "") when it succeeds."""
    try:
        await call
    except GRPCError as error:
        return error.status, error.message or ""
    return Status.OK, ""


def shape(message: str) -> str:
    """A details message with its ids blanked, to compare two refusals."""
    return re.sub(r"\d+", "#", message)


def bearer(token: str) -> Metadata:
    return {"authorization": f"Bearer {token}"}


async def frames_until(
    live: SessionStream, last: Callable[[pb.ServerFrame], bool]
) -> list[pb.ServerFrame]:
    """Every frame up to and including the first that matches `last`."""
    seen: list[pb.ServerFrame] = []

    def keep(frame: pb.ServerFrame) -> bool:
        seen.append(frame)
        return last(frame)

    await live.wait_for(keep)
    return seen


def resume() -> pb.ClientFrame:
    return pb.ClientFrame(resume=pb.Resume())


def never(frame: pb.ServerFrame) -> bool:
    return False


def acked(cid: str) -> Callable[[pb.ServerFrame], bool]:
    return lambda f: f.ack is not None and f.ack.client_message_id == cid


# ---- the scene -------------------------------------------------------------


@dataclass
class Scene:
    crab: Crab
    connect: ClientFactory
    alice: CrabClient  # the account whose credentials are tried
    bob: CrabClient
    carol: CrabClient  # an outsider to everything below
    room: pb.Chat  # alice's room: alice and bob, messages "one" and "two"
    invite: pb.Invite  # pending: bob invites alice to a personal conversation
    signed_out: Metadata  # a second session of alice's, signed out

    async def sign_in_again(self, who: CrabClient) -> CrabClient:
        other = await self.connect(sign_up=False)
        await other.sign_in(who.user.username, PASSWORD)
        return other


@pytest.fixture
async def scene(crab: Crab, connect: ClientFactory) -> Scene:
    alice, bob, carol = [await connect(n) for n in ("alice", "bob", "carol")]
    room = await rpc(alice, "Chats/CreateRoom", pb.CreateRoomRequest(name="r"), alice.metadata)
    invite = pb.RoomInviteRequest(chat_id=room.id, user_id=bob.user.id)
    invite = await rpc(alice, "Invites/InviteToRoom", invite, alice.metadata)
    answer = pb.AnswerInviteRequest(invite_id=invite.id, accept=True)
    await rpc(bob, "Invites/AnswerInvite", answer, bob.metadata)
    async with alice.session() as live:
        for text in ("one", "two"):
            await live.send(room.id, text)
        await live.collect(lambda f: f.ack is not None, 2)
    direct = pb.DirectInviteRequest(user_id=alice.user.id)
    invite = await rpc(bob, "Invites/InviteToDirect", direct, bob.metadata)
    s = Scene(crab, connect, alice, bob, carol, room, invite, {})
    gone = await s.sign_in_again(alice)
    await rpc(gone, "Accounts/SignOut", pb.SignOutRequest(), gone.metadata)
    s.signed_out = gone.metadata
    return s


async def state(s: Scene) -> list[Any]:
    """What the failures below must leave untouched, read with valid tokens."""
    chat = s.room.id
    reads = [
        (s.alice, "Accounts/WhoAmI", pb.Empty()),
        (s.alice, "Chats/MyChats", pb.Empty()),
        (s.alice, "Chats/GetChat", pb.ChatRequest(chat_id=chat)),
        (s.alice, "Chats/GetMessages", pb.GetMessagesRequest(chat_id=chat)),
        (s.carol, "Chats/MyChats", pb.Empty()),
        *[(c, "Invites/MyInvites", pb.Empty()) for c in (s.alice, s.bob, s.carol)],
    ]
    return [await rpc(c, path, request, c.metadata) for c, path, request in reads]


# ---- every authenticated RPC, as alice --------------------------------------

# (path + label, request). Ordered so that with valid tokens every call
# succeeds: leaving and signing out come last.
CALLS: list[tuple[str, Callable[[Scene], Any]]] = [
    ("Accounts/WhoAmI", lambda s: pb.Empty()),
    ("Users/GetUser", lambda s: pb.GetUserRequest(user_id=s.bob.user.id)),
    ("Users/SearchUsers", lambda s: pb.SearchUsersRequest(query="bob")),
    ("Chats/MyChats", lambda s: pb.Empty()),
    ("Chats/GetChat", lambda s: pb.ChatRequest(chat_id=s.room.id)),
    ("Chats/CreateRoom", lambda s: pb.CreateRoomRequest(name="new")),
    ("Chats/GetMessages", lambda s: pb.GetMessagesRequest(chat_id=s.room.id)),
    ("Chats/MarkRead", lambda s: pb.MarkReadRequest(chat_id=s.room.id, message_id=1)),
    ("Chats/SearchMessages", lambda s: pb.SearchMessagesRequest(query="hi")),
    ("Chats/EditMessage", lambda s: pb.EditMessageRequest(s.room.id, 1, "one!")),
    ("Chats/React", lambda s: pb.ReactRequest(s.room.id, 1, "👍")),
    ("Chats/GetChanges", lambda s: pb.GetChangesRequest(chat_id=s.room.id)),
    ("Chats/DeleteMessage", lambda s: pb.DeleteMessageRequest(s.room.id, 2)),
    ("Invites/MyInvites", lambda s: pb.Empty()),
    ("Invites/InviteToRoom", lambda s: pb.RoomInviteRequest(s.room.id, s.carol.user.id)),
    ("Invites/InviteToDirect", lambda s: pb.DirectInviteRequest(user_id=s.carol.user.id)),
    ("Invites/AnswerInvite", lambda s: pb.AnswerInviteRequest(s.invite.id, accept=False)),
    ("Session/Connect open", lambda s: resume()),
    (
        "Session/Connect send",
        lambda s: pb.ClientFrame(send=pb.SendMessage(s.room.id, "cid", "hi")),
    ),
    ("Accounts/SetDisplayName", lambda s: pb.SetDisplayNameRequest(display_name="Al")),
    ("Chats/RenameRoom", lambda s: pb.RenameRoomRequest(chat_id=s.room.id, name="renamed")),
    ("Chats/SetTopic", lambda s: pb.SetTopicRequest(chat_id=s.room.id, topic="a topic")),
    ("Chats/RemoveMember", lambda s: pb.RemoveMemberRequest(s.room.id, s.bob.user.id)),
    ("Chats/LeaveChat", lambda s: pb.ChatRequest(chat_id=s.room.id)),
    ("Accounts/SignOut", lambda s: pb.SignOutRequest()),
    ("Accounts/SignOut everywhere", lambda s: pb.SignOutRequest(everywhere=True)),
    # Last: the next fresh sign-in would need the new password.
    (
        "Accounts/ChangePassword",
        lambda s: pb.ChangePasswordRequest(current_password=PASSWORD, new_password="new " * 3),
    ),
]


async def call_all(s: Scene, credentials: Callable[[], Awaitable[Metadata]]) -> dict[str, Status]:
    results = {}
    for name, request in CALLS:
        path = name.split()[0]
        results[name] = (await outcome(rpc(s.alice, path, request(s), await credentials())))[0]
    return results


def jwt_of(client: CrabClient) -> str:
    assert client.tokens is not None
    return client.tokens.access_token


def claims(s: Scene, **changes: Any) -> dict[str, Any]:
    """Alice's valid claims (sub: her id, sid: her session, iat, exp), changed."""
    payload = jwt_of(s.alice).split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {**decoded, **changes}


def sign(claims: dict[str, Any], key: str) -> str:
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(key))


def server_secret(s: Scene) -> str:
    return (s.crab.settings.data_dir / "jwt-secret").read_text().strip()


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def expired(s: Scene) -> Metadata:
    now = int(time.time())
    return bearer(sign(claims(s, iat=now - 7200, exp=now - 3600), server_secret(s)))


NONE_HEADER = b64url({"alg": "none", "typ": "JWT"})

BAD_CREDENTIALS: list[tuple[str, Callable[[Scene], Metadata]]] = [
    ("no token", lambda s: {}),
    ("expired", expired),
    ("signed with another key", lambda s: bearer(sign(claims(s), secrets.token_urlsafe(32)))),
    ("alg none", lambda s: bearer(f"{NONE_HEADER}.{b64url(claims(s))}.")),
    ("unknown session", lambda s: bearer(sign(claims(s, sid=MISSING), server_secret(s)))),
    ("garbage", lambda s: bearer("not-a-token")),
    ("garbage in three parts", lambda s: bearer("a.b.c")),
    ("no Bearer prefix", lambda s: {"authorization": jwt_of(s.alice)}),
    ("signed out", lambda s: s.signed_out),
]


def test_the_table_covers_every_authenticated_rpc() -> None:
    bases = (pb.AccountsBase, pb.UsersBase, pb.ChatsBase, pb.InvitesBase, pb.SessionBase)
    every = {path for base in bases for path in base().__mapping__()}
    covered = {f"/crab.v1.{name.split()[0]}" for name, _ in CALLS}
    assert covered == every - PUBLIC_METHODS


async def test_valid_credentials_pass_every_call(scene: Scene) -> None:
    """The control: the calls are well-formed, so a refusal below is the
    credentials' doing. A fresh sign-in per call, as some calls sign out."""

    async def fresh() -> Metadata:
        return (await scene.sign_in_again(scene.alice)).metadata

    results = await call_all(scene, fresh)
    assert results == dict.fromkeys(results, Status.OK)


@pytest.mark.parametrize(
    "make", [c for _, c in BAD_CREDENTIALS], ids=[n for n, _ in BAD_CREDENTIALS]
)
async def test_bad_credentials_are_refused_everywhere(
    scene: Scene, make: Callable[[Scene], Metadata]
) -> None:
    before = await state(scene)

    async def bad() -> Metadata:
        return make(scene)

    results = await call_all(scene, bad)
    assert results == dict.fromkeys(results, Status.UNAUTHENTICATED)
    assert await state(scene) == before


# ---- signing out -------------------------------------------------------------


async def refused(client: CrabClient) -> list[Status]:
    """How the client's access token, refresh token and stream fare now."""
    return [
        (await outcome(rpc(client, "Accounts/WhoAmI", pb.Empty(), client.metadata)))[0],
        (await outcome(client.refresh()))[0],
        (await outcome(open_stream(client, resume(), client.metadata)))[0],
    ]


async def test_sign_out_ends_that_session_its_refresh_token_and_its_stream(scene: Scene) -> None:
    s = scene
    laptop = await s.sign_in_again(s.alice)
    async with s.alice.session() as phone:
        with pytest.raises(GRPCError) as ended:
            async with laptop.session() as live:
                await rpc(laptop, "Accounts/SignOut", pb.SignOutRequest(), laptop.metadata)
                await live.wait_for(never)
        assert ended.value.status == Status.UNAUTHENTICATED
        assert await refused(laptop) == [Status.UNAUTHENTICATED] * 3

        # Alice's other session, and its stream, live on.
        await rpc(s.alice, "Accounts/WhoAmI", pb.Empty(), s.alice.metadata)
        await phone.wait_for(acked(await phone.send(s.room.id, "still here")))
    await s.alice.refresh()


async def test_sign_out_everywhere_ends_every_session_of_that_user(scene: Scene) -> None:
    s = scene
    laptop = await s.sign_in_again(s.alice)
    async with s.bob.session() as bystander:
        with pytest.raises(GRPCError) as ended:
            async with s.alice.session() as phone:
                everywhere = pb.SignOutRequest(everywhere=True)
                await rpc(laptop, "Accounts/SignOut", everywhere, laptop.metadata)
                await phone.wait_for(never)
        assert ended.value.status == Status.UNAUTHENTICATED
        for device in (s.alice, laptop):
            assert await refused(device) == [Status.UNAUTHENTICATED] * 3

        # Bob is someone else: his session and stream are untouched.
        await rpc(s.bob, "Accounts/WhoAmI", pb.Empty(), s.bob.metadata)
        await bystander.wait_for(acked(await bystander.send(s.room.id, "still here")))


# ---- outsiders ---------------------------------------------------------------

# (path, request(chat id, a member of that chat)), made by carol, an outsider.
OUTSIDER_CALLS: list[tuple[str, Callable[[int, pb.User], Any]]] = [
    ("Chats/GetChat", lambda chat, _: pb.ChatRequest(chat_id=chat)),
    ("Chats/GetMessages", lambda chat, _: pb.GetMessagesRequest(chat_id=chat)),
    ("Chats/LeaveChat", lambda chat, _: pb.ChatRequest(chat_id=chat)),
    ("Chats/MarkRead", lambda chat, _: pb.MarkReadRequest(chat_id=chat, message_id=2)),
    ("Chats/RenameRoom", lambda chat, _: pb.RenameRoomRequest(chat_id=chat, name="mine")),
    ("Chats/SetTopic", lambda chat, _: pb.SetTopicRequest(chat_id=chat, topic="mine")),
    ("Chats/RemoveMember", lambda chat, member: pb.RemoveMemberRequest(chat, member.id)),
    ("Chats/SearchMessages", lambda chat, _: pb.SearchMessagesRequest("hi", chat_id=chat)),
    # Inviting a member: "already a member" would give the room away.
    ("Invites/InviteToRoom", lambda chat, member: pb.RoomInviteRequest(chat, member.id)),
]


@pytest.mark.parametrize("path,request_", OUTSIDER_CALLS, ids=[p for p, _ in OUTSIDER_CALLS])
async def test_outsider_cannot_tell_a_chat_from_a_missing_one(
    scene: Scene, path: str, request_: Callable[[int, pb.User], Any]
) -> None:
    s, carol = scene, scene.carol
    before = await state(s)
    theirs = await outcome(rpc(carol, path, request_(s.room.id, s.alice.user), carol.metadata))
    missing = await outcome(rpc(carol, path, request_(MISSING, s.alice.user), carol.metadata))
    assert theirs[0] == missing[0] == Status.NOT_FOUND
    assert shape(theirs[1]) == shape(missing[1])
    assert await state(s) == before


async def test_outsider_on_the_stream_gets_send_errors_and_no_replay(scene: Scene) -> None:
    s = scene
    own = await rpc(s.carol, "Chats/CreateRoom", pb.CreateRoomRequest(name="c"), s.carol.metadata)
    before = await state(s)
    async with s.alice.session() as watcher:
        async with s.carol.session({s.room.id: 0}) as live:
            assert live.backlog == []  # a cursor for alice's room replays nothing

            errors = []
            for chat_id in (s.room.id, MISSING):
                cid = await live.send(chat_id, "let me in")
                frame = await live.wait_for(lambda f: f.send_error is not None)
                assert frame.send_error.client_message_id == cid
                errors.append(frame.send_error)
            assert [e.code for e in errors] == ["NOT_FOUND", "NOT_FOUND"]
            assert shape(errors[0].message) == shape(errors[1].message)

            # A resume mid-stream replays nothing either; the stream still works.
            await live.resume({s.room.id: 0})
            seen = await frames_until(live, acked(await live.send(own.id, "my own room")))
            assert {f.message.chat_id for f in seen if f.message} <= {own.id}

        # Had the outsider's send landed, alice would see it before her own.
        await watcher.send(s.room.id, "ping")
        seen = await frames_until(
            watcher, lambda f: f.message is not None and f.message.text == "ping"
        )
        assert [f.message.text for f in seen if f.message] == ["ping"]
    after = await state(s)
    assert after[2].members == before[2].members
    assert [m.text for m in after[3].messages] == ["ping", "two", "one"]


# ---- invites addressed to someone else ----------------------------------------


def answer(client: CrabClient, invite_id: int, accept: bool) -> Awaitable[pb.InviteAnswer]:
    request = pb.AnswerInviteRequest(invite_id=invite_id, accept=accept)
    return rpc(client, "Invites/AnswerInvite", request, client.metadata)


@pytest.mark.parametrize("accept", [True, False], ids=["accept", "decline"])
async def test_only_the_invitee_answers_an_invite(scene: Scene, accept: bool) -> None:
    s = scene
    before = await state(s)
    assert (await outcome(answer(s.bob, s.invite.id, accept)))[0] == Status.PERMISSION_DENIED
    by_stranger = await outcome(answer(s.carol, s.invite.id, accept))
    missing = await outcome(answer(s.carol, MISSING, accept))
    assert by_stranger[0] == missing[0] == Status.NOT_FOUND
    assert shape(by_stranger[1]) == shape(missing[1])

    assert await state(s) == before  # still pending, nobody joined anything
    received = (await rpc(s.alice, "Invites/MyInvites", pb.Empty(), s.alice.metadata)).received
    assert [i.id for i in received] == [s.invite.id]
    assert (await answer(s.alice, s.invite.id, accept)).accepted == accept
