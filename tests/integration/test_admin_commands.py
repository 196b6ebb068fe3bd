"""The admin's `crab user ...` and `crab room ...` against a real `crab serve`
process and real clients: the commands run in their own process on the
same database, and the server's periodic check (every 0.5 s here) ends the
live streams they concern (docs/admin.md)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, SessionStream
from crab.core.storage.identities import NO_PASSWORD
from tests.helpers.chats import all_messages, join_room
from tests.helpers.process import LIFTED_LIMITS, CrabProcess, run_crab
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow

NEW_PASSWORD = "a brand new passphrase"
CHECK = "0.5"  # seconds between the server's checks of its open streams
ENDS_WITHIN = 20.0  # generous: the check runs every CHECK seconds


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data: Path) -> Iterator[CrabProcess]:
    process = CrabProcess.start(data, "--session-check-interval", CHECK, env=LIFTED_LIMITS)
    try:
        yield process
    finally:
        process.stop()


async def crab(
    data: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`crab ARGS --data-dir DATA` in its own process (off the event loop:
    the clients' streams stay served meanwhile)."""
    done = await asyncio.to_thread(run_crab, *args, "--data-dir", str(data), input=input)
    assert "Traceback" not in done.stderr, done.stderr
    return done


async def client(server: CrabProcess, name: str, sign_up: bool = False) -> CrabClient:
    c = CrabClient("127.0.0.1", server.port)
    try:
        if sign_up:
            await c.sign_up(name, PASSWORD)
        else:
            await c.sign_in(name, PASSWORD)
    except BaseException:
        c.close()
        raise
    return c


async def refused(call: object) -> GRPCError:
    assert asyncio.iscoroutine(call)
    with pytest.raises(GRPCError) as error:
        await call
    return error.value


async def stream_ended(live: SessionStream) -> GRPCError:
    """The status the server ended the live stream with (frames before it dropped)."""
    with pytest.raises(GRPCError) as ended:
        async with asyncio.timeout(ENDS_WITHIN):
            while await live.recv() is not None:
                pass
    return ended.value


async def test_a_disabled_account_is_signed_out_everywhere_until_enabled(
    server: CrabProcess, data: Path
) -> None:
    alice = await client(server, "alice", sign_up=True)
    try:
        async with alice.session() as live:
            done = await crab(data, "user", "disable", "alice")
            assert done.returncode == 0, done.stderr
            assert "alice is disabled" in done.stdout

            error = await refused(alice.my_chats())
            assert error.status is Status.UNAUTHENTICATED
            assert (await stream_ended(live)).status is Status.UNAUTHENTICATED

        error = await refused(alice.refresh())
        assert error.status is Status.PERMISSION_DENIED
        assert error.message == "account disabled by an admin"
        error = await refused(client(server, "alice"))
        assert (error.status, error.message) == (
            Status.PERMISSION_DENIED,
            "account disabled by an admin",
        )
        # A wrong password says nothing about the account.
        error = await refused(alice.sign_in("alice", "not the password"))
        assert error.status is Status.UNAUTHENTICATED

        listed = await crab(data, "user", "list")
        assert listed.stdout.splitlines() == ["1\talice\talice\tdisabled"]

        assert (await crab(data, "user", "enable", "alice")).returncode == 0
        again = await client(server, "alice")
        assert (await again.who_am_i()).username == "alice"
        again.close()
    finally:
        alice.close()


async def test_reset_password_takes_the_old_one_and_every_session_away(
    server: CrabProcess, data: Path
) -> None:
    alice = await client(server, "alice", sign_up=True)
    try:
        async with alice.session() as live:
            done = await crab(
                data, "user", "reset-password", "alice", "--password-stdin", input=NEW_PASSWORD
            )
            assert done.returncode == 0, done.stderr
            assert (await refused(alice.who_am_i())).status is Status.UNAUTHENTICATED
            assert (await stream_ended(live)).status is Status.UNAUTHENTICATED

        assert (await refused(client(server, "alice"))).status is Status.UNAUTHENTICATED
        await alice.sign_in("alice", NEW_PASSWORD)
        assert (await alice.who_am_i()).username == "alice"

        short = await crab(data, "user", "reset-password", "alice", "--password-stdin", input="x")
        assert short.returncode == 1 and "at least 8 characters" in short.stderr
    finally:
        alice.close()


async def test_sessions_are_listed_and_revoked_one_or_all(server: CrabProcess, data: Path) -> None:
    laptop = await client(server, "alice", sign_up=True)
    phone = await client(server, "alice")
    try:
        listed = await crab(data, "user", "sessions", "alice")
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        assert [row[3] for row in rows] == ["active", "active"]
        phone_id, laptop_id = (row[0] for row in rows)  # newest first

        async with laptop.session() as live:
            done = await crab(data, "user", "sessions", "alice", "--revoke", laptop_id)
            assert done.returncode == 0, done.stderr
            assert (await stream_ended(live)).status is Status.UNAUTHENTICATED
        assert (await refused(laptop.my_chats())).status is Status.UNAUTHENTICATED
        assert (await phone.who_am_i()).username == "alice"  # only that one

        again = await crab(data, "user", "sessions", "alice", "--revoke", laptop_id)
        assert again.returncode == 1 and f"no active session {laptop_id}" in again.stderr

        everything = await crab(data, "user", "sessions", "alice", "--revoke-all")
        assert everything.returncode == 0, everything.stderr
        assert (await refused(phone.who_am_i())).status is Status.UNAUTHENTICATED
        listed = await crab(data, "user", "sessions", "alice")
        states = [line.split("\t")[3] for line in listed.stdout.splitlines()]
        assert all(state.startswith("signed out ") for state in states), states
        assert phone_id != laptop_id
    finally:
        laptop.close()
        phone.close()


async def test_a_deleted_accounts_messages_stay_for_the_others(
    server: CrabProcess, data: Path
) -> None:
    alice = await client(server, "alice", sign_up=True)
    bob = await client(server, "bob", sign_up=True)
    try:
        room = await join_room(alice, bob)
        async with alice.session() as mine:
            await mine.send(room, "remember this")
            await mine.wait_for(lambda f: f.ack is not None)

        kept = await crab(data, "user", "delete", "alice", input="n\n")
        assert kept.returncode == 1 and "Aborted" in kept.stderr
        assert (await alice.who_am_i()).username == "alice"

        async with alice.session() as live:
            done = await crab(data, "user", "delete", "alice", "--yes")
            assert done.returncode == 0, done.stderr
            assert (await stream_ended(live)).status is Status.UNAUTHENTICATED

        [message] = await all_messages(bob, room)
        assert message.text == "remember this"
        assert message.sender is not None
        assert message.sender.display_name == "deleted account"
        detail = await bob.chat(room)
        assert [m.username for m in detail.members] == ["bob"]
        assert [u.username for u in await bob.search_users("alice")] == []

        assert (await refused(client(server, "alice"))).status is Status.UNAUTHENTICATED
        newcomer = await client(server, "alice", sign_up=True)  # the name is free
        assert newcomer.user.id != message.sender.id
        assert (await refused(newcomer.history(room))).status is Status.NOT_FOUND
        newcomer.close()

        listed = await crab(data, "user", "list", "--all")
        assert "\tdeleted account\tdeleted" in listed.stdout
    finally:
        alice.close()
        bob.close()


async def test_a_deleted_room_leaves_its_members_lists(server: CrabProcess, data: Path) -> None:
    alice = await client(server, "alice", sign_up=True)
    bob = await client(server, "bob", sign_up=True)
    try:
        room = await join_room(alice, bob, name="ops")
        first = await join_room(alice, bob, name="twin")
        second = await join_room(alice, bob, name="twin")
        async with alice.session() as mine:
            await mine.send(room, "hello ops")
            await mine.wait_for(lambda f: f.ack is not None)

        listed = await crab(data, "room", "list")
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        assert rows[0] == [str(room), "ops", "alice", "2", "1"]
        assert len(rows) == 3

        twins = await crab(data, "room", "delete", "twin", "--yes")
        assert twins.returncode == 1
        assert f"ids {first}, {second}" in twins.stderr

        async with bob.session() as live:
            done = await crab(data, "room", "delete", "ops", "--yes")
            assert done.returncode == 0, done.stderr
            assert "deleted room" in done.stdout
            left = await live.wait_for(lambda f: f.chat_left is not None, ENDS_WITHIN)
            assert left.chat_left is not None and left.chat_left.chat_id == room

            # The stream goes on for the other rooms.
            async with alice.session() as mine:
                await mine.send(first, "still here")
            await live.wait_for(lambda f: f.message is not None and f.message.chat_id == first)

        assert room not in {c.chat.id for c in await bob.my_chats() if c.chat}
        assert (await refused(bob.history(room))).status is Status.NOT_FOUND
        gone = await crab(data, "room", "delete", str(room), "--yes")
        assert gone.returncode == 1 and "no room" in gone.stderr
        by_id = await crab(data, "room", "delete", str(second), "--yes")
        assert by_id.returncode == 0, by_id.stderr
    finally:
        alice.close()
        bob.close()


@pytest.fixture(scope="module")
def alice_only(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data dir with one account, made once: each garbage command is refused
    and changes nothing (a refusal that did would show in the next one)."""
    data = str(tmp_path_factory.mktemp("garbage") / "data")
    added = run_crab("user", "add", "alice", "--password-stdin", "--data-dir", data, input=PASSWORD)
    assert added.returncode == 0, added.stderr
    return data


@pytest.mark.parametrize(
    ("args", "code", "complaint"),
    [
        (["user", "disable", "nobody"], 1, "no account named 'nobody'"),
        (["user", "enable", "al\x1bice"], 1, "username must be"),
        (["user", "delete", "x" * 500, "--yes"], 1, "username must be"),
        (["user", "sessions", "nobody"], 1, "no account named"),
        (["user", "sessions", "alice", "--revoke", "abc"], 2, "not a valid integer"),
        (["user", "sessions", "alice", "--revoke", "1", "--revoke-all"], 2, "not both"),
        (["user", "sessions", "alice", "--revoke", "99999999999999999999999"], 2, "--revoke"),
        (["user", "sessions", "alice", "--revoke", "0"], 2, "--revoke"),
        (["room", "delete", "99999999999999999999999", "--yes"], 1, "no room with id or name"),
        (["room", "delete", "nowhere", "--yes"], 1, "no room with id or name 'nowhere'"),
        (["room", "delete", "bad\x07name", "--yes"], 1, "room name"),
        (["room", "delete", "", "--yes"], 1, "room name must not be empty"),
        (["user", "frobnicate"], 2, "No such command"),
    ],
)
def test_garbage_arguments_get_clear_errors(
    alice_only: str, args: list[str], code: int, complaint: str
) -> None:
    done = run_crab(*args, "--data-dir", alice_only)
    assert done.returncode == code, done.stdout + done.stderr
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


def test_an_identity_providers_account_has_no_password_to_reset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = run_crab(
        "user", "add", "sso-bob", "--password-stdin", "--data-dir", str(data), input=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    # What a first sign-in through the provider stores as the password.
    with sqlite3.connect(data / "crab.db") as db:
        db.execute("UPDATE users SET password_hash = ? WHERE username = 'sso-bob'", (NO_PASSWORD,))
    done = run_crab(
        "user",
        "reset-password",
        "sso-bob",
        "--password-stdin",
        "--data-dir",
        str(data),
        input=NEW_PASSWORD,
    )
    assert done.returncode == 1
    assert "signs in through the identity provider" in done.stderr
