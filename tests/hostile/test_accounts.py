"""Attacks 4 and 8 of issue 10, abuse of accounts, against a real `crab
serve` process while a bystander keeps working: forged claims, a stolen
refresh token used by both sides."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from grpclib import GRPCError
from grpclib.const import Status
from jose import jwt

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from tests.hostile.conftest import Bystander
from tests.serve_process import CrabProcess


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
        token = jwt.encode(claims, secret, algorithm="HS256")
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
