"""Attacks 4 and 8 of issue 10, abuse of accounts, against a real `crab
serve` process while a bystander keeps working: password guessing (the
hashing queue and the backoff), floods of sign-ups, rooms and invites,
forged claims, a stolen refresh token used by both sides.

Everything in tests comes from 127.0.0.1; a user "elsewhere" connects from
127.0.0.2 (Linux routes all of 127/8 to lo)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.protocol import H2Protocol
from joserfc import jwt
from joserfc.jwk import OctKey

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from tests.helpers.chats import Bystander, bystander_on, new_user
from tests.helpers.process import CrabProcess
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow  # a real crab serve process

ELSEWHERE = "127.0.0.2"
WRONG = "not the password"


class ChannelFrom(Channel):
    """A grpclib Channel whose connection leaves from a chosen local address
    (grpclib has no option for it)."""

    def __init__(self, host: str, port: int, local_host: str) -> None:
        super().__init__(host, port)
        self._local_host = local_host

    async def _create_connection(self) -> H2Protocol:
        _, protocol = await self._loop.create_connection(
            self._protocol_factory, self._host, self._port, local_addr=(self._local_host, 0)
        )
        return protocol


def client_from(server: CrabProcess, local_host: str) -> CrabClient:
    client = CrabClient("127.0.0.1", server.port)
    client.channel.close()
    client.channel = ChannelFrom("127.0.0.1", server.port, local_host)
    client.accounts = pb.AccountsStub(client.channel)
    client.users = pb.UsersStub(client.channel)
    client.chats = pb.ChatsStub(client.channel)
    client.invites = pb.InvitesStub(client.channel)
    return client


async def outcome(call: Awaitable[Any]) -> tuple[Status, str]:
    try:
        await call
    except GRPCError as error:
        return error.status, error.message or ""
    return Status.OK, ""


def sign_in(client: CrabClient, username: str, password: str) -> Awaitable[Any]:
    return client.accounts.sign_in(pb.SignInRequest(username=username, password=password))


# ---- attack 4: guessing passwords ----------------------------------------------

ATTACKERS = 50


async def test_fifty_guessers_do_not_keep_a_real_user_from_signing_in(tmp_path: Path) -> None:
    """Real argon2 (the default cost): 50 concurrent wrong-password loops
    from one address. They hold at most 2 places in the hashing queue and
    soon back off; the owner signs in from elsewhere, and so does another
    user, while the bystander keeps chatting."""
    env = {"CRAB_PASSWORD_HASHING": "default"}
    with CrabProcess.start(tmp_path / "data", env=env) as server:
        async with bystander_on(server) as bystander:
            victim = bystander.alice.user.username
            carol = client_from(server, ELSEWHERE)
            await carol.sign_up("carol", PASSWORD)
            seen: Counter[tuple[Status, str]] = Counter()
            queue_full = (
                Status.RESOURCE_EXHAUSTED,
                "too many sign-ins from your address at once (at most 2)",
            )
            backing_off = (Status.RESOURCE_EXHAUSTED, "too many failed sign-ins")
            refused = {queue_full: asyncio.Event(), backing_off: asyncio.Event()}
            stop = asyncio.Event()

            async def guess() -> None:
                client = CrabClient("127.0.0.1", server.port)
                try:
                    while not stop.is_set():
                        status, message = await outcome(sign_in(client, victim, WRONG))
                        seen[status, message.split(";")[0]] += 1
                        if (status, message.split(";")[0]) in refused:
                            refused[status, message.split(";")[0]].set()
                finally:
                    client.close()

            attackers = [asyncio.create_task(guess()) for _ in range(ATTACKERS)]
            try:
                await asyncio.wait_for(refused[queue_full].wait(), 30)  # the flood is on
                owner = client_from(server, ELSEWHERE)
                await owner.sign_in(victim, PASSWORD)  # not locked out from elsewhere
                await carol.sign_in("carol", PASSWORD)
                await bystander.check()
                await asyncio.wait_for(refused[backing_off].wait(), 30)
            finally:
                stop.set()
                await asyncio.gather(*attackers)
                carol.close()
            wrong = (Status.UNAUTHENTICATED, "wrong username or password")
            assert set(seen) == {wrong, queue_full, backing_off}, seen
            assert 5 <= seen[wrong] <= 5 + 2, seen  # 2 may have been in the queue at the 5th
            # From 127.0.0.1 the victim is backing off now, even with the password.
            status, message = await outcome(sign_in(bystander.bob, victim, PASSWORD))
            assert status is Status.RESOURCE_EXHAUSTED
            assert message.startswith("too many failed sign-ins; try again in ")
            await bystander.check()
            owner.close()


async def test_failed_sign_ins_back_off_per_account_and_address(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    victim = bystander.alice.user.username
    client = bystander.bob
    got = [await outcome(sign_in(client, victim, WRONG)) for _ in range(5)]
    assert [status for status, _ in got] == [Status.UNAUTHENTICATED] * 5
    # Refused before any hashing, the right password too (from this address)...
    assert await outcome(sign_in(client, victim, PASSWORD)) == (
        Status.RESOURCE_EXHAUSTED,
        "too many failed sign-ins; try again in 1 s",
    )
    # ...but the owner elsewhere signs in: an attacker cannot lock anyone out.
    elsewhere = client_from(hostile_server, ELSEWHERE)
    try:
        assert await outcome(sign_in(elsewhere, victim, PASSWORD)) == (Status.OK, "")
        # Other accounts from the guesser's address are still fine (until 20 failures).
        bob = bystander.bob.user.username
        assert await outcome(sign_in(client, bob, PASSWORD)) == (Status.OK, "")
        for n in range(14):  # 5 + 14 = 19 failures from 127.0.0.1
            assert (await outcome(sign_in(client, f"nobody{n}", WRONG)))[0] is (
                Status.UNAUTHENTICATED
            )
        assert (await outcome(sign_in(client, "nobody99", WRONG)))[0] is Status.UNAUTHENTICATED
        status, message = await outcome(sign_in(client, bob, PASSWORD))
        assert (status, message.split(";")[0]) == (
            Status.RESOURCE_EXHAUSTED,
            "too many failed sign-ins",
        )
        assert await outcome(sign_in(elsewhere, bob, PASSWORD)) == (Status.OK, "")
    finally:
        elsewhere.close()
    await bystander.check()


# ---- attack 4: floods of sign-ups, rooms and invites ---------------------------

SLACK = 3  # tokens a bucket may regain while a flood runs (rooms: 1 per 3 s)


async def flood(call: Callable[[int], Awaitable[Any]], most: int) -> list[tuple[Status, str]]:
    """Calls until the first RESOURCE_EXHAUSTED (or `most` calls)."""
    got: list[tuple[Status, str]] = []
    for n in range(most):
        got.append(await outcome(call(n)))
        if got[-1][0] is Status.RESOURCE_EXHAUSTED:
            break
    return got


async def test_sign_ups_are_limited_per_address(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    client = CrabClient("127.0.0.1", hostile_server.port)
    run = uuid.uuid4().hex[:6]

    def sign_up(n: int) -> Awaitable[Any]:
        request = pb.SignUpRequest(username=f"flood{run}{n}", password=PASSWORD)
        return client.accounts.sign_up(request)

    try:
        got = await flood(sign_up, 100)
    finally:
        client.close()
    ok = [status for status, _ in got[:-1]]
    assert ok == [Status.OK] * len(ok) and 28 <= len(ok) <= 28 + SLACK  # the bystander made 2
    assert got[-1][0] is Status.RESOURCE_EXHAUSTED
    assert got[-1][1].startswith("too many sign-ups from your address: at most 30/h; try again in")
    elsewhere = client_from(hostile_server, ELSEWHERE)
    try:
        await elsewhere.sign_up(f"elsewhere{run}", PASSWORD)
    finally:
        elsewhere.close()
    await bystander.check()


async def test_rooms_are_limited_per_user_and_per_address(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    def create(client: CrabClient) -> Callable[[int], Awaitable[Any]]:
        def call(n: int) -> Awaitable[Any]:
            request = pb.CreateRoomRequest(name=f"flood {n}")
            return client.chats.create_room(request, metadata=client.metadata)

        return call

    alice = bystander.alice  # made "ops" already
    got = await flood(create(alice), 300)
    assert 19 <= len(got) - 1 <= 19 + SLACK and got[-1][0] is Status.RESOURCE_EXHAUSTED
    assert got[-1][1].startswith("too many rooms created by you: at most 20/min; try again in")
    made = len(got)  # alice's, with "ops"
    others = [await new_user(hostile_server) for _ in range(3)]
    try:
        for client in others:
            got = await flood(create(client), 300)
            made += len(got) - 1
            if got[-1][1].startswith("too many rooms created from your address"):
                break
        assert got[-1][0] is Status.RESOURCE_EXHAUSTED
        assert got[-1][1].startswith(
            "too many rooms created from your address: at most 60/min; try again in"
        )
        assert 60 <= made <= 60 + SLACK
    finally:
        for client in others:
            client.close()
    await bystander.check()


async def test_invites_are_limited_per_user(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    alice, bob = bystander.alice, bystander.bob

    def invite(n: int) -> Awaitable[Any]:
        request = pb.DirectInviteRequest(user_id=bob.user.id)
        return alice.invites.invite_to_direct(request, metadata=alice.metadata)

    got = await flood(invite, 300)
    statuses = [status for status, _ in got]
    # One invite to a conversation with bob; asking again is ALREADY_EXISTS,
    # and still counts (each try is work for the server).
    assert statuses[0] is Status.OK and set(statuses[1:-1]) == {Status.ALREADY_EXISTS}
    assert 59 <= len(got) - 1 <= 59 + SLACK  # the bystander's invite was the first of 60
    assert got[-1][0] is Status.RESOURCE_EXHAUSTED
    assert got[-1][1].startswith("too many invites sent by you: at most 60/min; try again in")
    await bystander.check()


async def status_of(call: Any) -> Status:
    try:
        await call
    except GRPCError as error:
        return error.status
    return Status.OK


# ---- attack 8: claims and refresh tokens ----------------------------------------

FORGED_CLAIMS: dict[str, dict[str, Any]] = {
    "sid 2**80": {"sid": 2**80},
    "sid 2**63": {"sid": 2**63},
    "sid negative": {"sid": -1},
    "sid zero": {"sid": 0},
    "sid a string": {"sid": "1"},
    "sid a float": {"sid": 1.5},
    "sid true": {"sid": True},
    "sid missing": {"sid": None},
    "sub 2**80": {"sub": str(2**80)},
    "sub negative": {"sub": "-1"},
    "sub not a number": {"sub": "alice"},
    "sub an int": {"sub": 1},
    "sub a float": {"sub": "1.0"},
    "sub padded": {"sub": " 1"},
    "sub missing": {"sub": None},
    "exp a string": {"exp": "soon"},
}


async def test_forged_claims_signed_with_the_real_key_are_unauthenticated(
    tmp_path: Path, hostile_server: CrabProcess, bystander: Bystander
) -> None:
    secret = (tmp_path / "data" / "jwt-secret").read_text().strip()
    me = bystander.alice.user.id
    for label, change in FORGED_CLAIMS.items():
        now = int(time.time())
        claims: dict[str, Any] = {"sub": str(me), "sid": 1, "iat": now, "exp": now + 600}
        claims.update(change)
        claims = {k: v for k, v in claims.items() if v is not None}
        token = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))
        metadata = {"authorization": f"Bearer {token}"}
        client = bystander.alice
        assert await status_of(client.accounts.who_am_i(pb.Empty(), metadata=metadata)) == (
            Status.UNAUTHENTICATED
        ), label
        assert await status_of(client.chats.my_chats(pb.Empty(), metadata=metadata)) == (
            Status.UNAUTHENTICATED
        ), label
    await bystander.check()


async def test_a_stolen_refresh_token_used_by_both_sides_ends_the_session(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    owner = bystander.alice
    assert owner.tokens is not None
    thief = CrabClient("127.0.0.1", hostile_server.port)
    thief.tokens = owner.tokens
    try:
        await thief.refresh()  # the thief is first; the owner comes back later
        with pytest.raises(GRPCError) as ended:
            async with thief.session() as live:
                assert await status_of(owner.refresh()) == Status.UNAUTHENTICATED
                await live.wait_for(lambda f: False)
        assert ended.value.status is Status.UNAUTHENTICATED
        assert await status_of(thief.accounts.who_am_i(pb.Empty(), metadata=thief.metadata)) == (
            Status.UNAUTHENTICATED
        )
        assert await status_of(thief.refresh()) == Status.UNAUTHENTICATED
        assert hostile_server.wait_for_line("refresh token used twice")
    finally:
        thief.close()
    await owner.sign_in(owner.user.username, "correct horse battery")  # signs in anew
    await bystander.check()
