"""Refresh tokens rotate once (attack 8 of issue 10): two refreshes with one
token at once give exactly one success, and a token presented again after
its rotation signs that session out and ends its streams. Runs on SQLite
and, in `make test-postgres`, on PostgreSQL (where the old select-then-
update let both of two concurrent refreshes succeed)."""

from __future__ import annotations

import asyncio

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.server import PASSWORD, ClientFactory

ATTEMPTS = 8


async def status_of(call: object) -> Status:
    try:
        await call  # type: ignore[misc]
    except GRPCError as error:
        return error.status
    return Status.OK


async def test_refreshes_with_one_token_at_once_give_exactly_one_success(
    connect: ClientFactory,
) -> None:
    alice = await connect("alice")
    assert alice.tokens is not None
    token = alice.tokens.refresh_token
    calls = [
        alice.accounts.refresh(pb.RefreshRequest(refresh_token=token)) for _ in range(ATTEMPTS)
    ]
    statuses = await asyncio.gather(*(status_of(c) for c in calls))
    assert statuses.count(Status.OK) == 1
    assert statuses.count(Status.UNAUTHENTICATED) == ATTEMPTS - 1


async def test_a_reused_refresh_token_signs_its_session_out(
    crab: Crab, connect: ClientFactory
) -> None:
    owner = await connect("alice")
    bob = await connect("bob")
    assert owner.tokens is not None
    thief = CrabClient("127.0.0.1", crab.port)  # the same tokens, stolen
    thief.tokens = owner.tokens
    other_device = await connect(sign_up=False)
    await other_device.sign_in(owner.user.username, PASSWORD)
    try:
        await thief.refresh()  # the thief is first
        with pytest.raises(GRPCError) as ended:
            async with thief.session() as live:
                with pytest.raises(GRPCError) as reused:
                    await owner.refresh()  # the owner's turn: the token was spent
                assert reused.value.status is Status.UNAUTHENTICATED
                assert "already used" in (reused.value.message or "")
                await live.wait_for(lambda f: False)
        assert ended.value.status is Status.UNAUTHENTICATED
        assert await status_of(thief.accounts.who_am_i(pb.Empty(), metadata=thief.metadata)) == (
            Status.UNAUTHENTICATED
        )
        assert await status_of(thief.refresh()) == Status.UNAUTHENTICATED
        # Only that session: the owner's other device and everyone else carry on.
        mine = other_device.accounts.who_am_i(pb.Empty(), metadata=other_device.metadata)
        assert (await mine).id == owner.user.id
        await other_device.refresh()
        await bob.accounts.who_am_i(pb.Empty(), metadata=bob.metadata)
    finally:
        thief.close()


async def test_a_client_asked_to_refresh_twice_at_once_refreshes_once(
    connect: ClientFactory,
) -> None:
    alice = await connect("alice")
    await asyncio.gather(alice.refresh(), alice.refresh(), alice.refresh())
    await alice.accounts.who_am_i(pb.Empty(), metadata=alice.metadata)
    await alice.refresh()  # the session is alive: its current token rotates
