"""Outages read as outages, against real services under a real `crab serve`
process: PostgreSQL stopped (calls answer UNAVAILABLE, not INTERNAL; a
short restart is ridden out by the worker's retries; nothing acknowledged
is lost) and SQLite on a tiny tmpfs that fills up (sends answer
RESOURCE_EXHAUSTED with a clear message, the log holds a warning line, not
a traceback per send, and sends work again once space returns)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient, SessionStream, new_request_id
from crab.proto.crab import v1 as pb
from tests.helpers.chats import join_room
from tests.helpers.cluster import Cluster
from tests.helpers.process import CrabProcess
from tests.helpers.services import PostgreSQL, missing_service, pg_bindir, rabbitmq_url  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PASSWORD = "correct horse battery"
OUTAGE_WAIT = "3"  # seconds the worker retries while the database is away
ANSWER_WAIT = 60.0  # a bound on a hang, not a measure of speed
UNAVAILABLE_TEXT = "the database is unavailable; try again shortly"


@pytest.fixture
def postgres() -> Iterator[PostgreSQL]:
    """A PostgreSQL server of this test's own: stopping it disturbs nobody."""
    bindir = pg_bindir()
    if bindir is None:
        missing_service("PostgreSQL is not installed (apt-get install postgresql)")
    assert bindir is not None
    base = Path(tempfile.mkdtemp(prefix="crab-postgres-fault-"))
    server = PostgreSQL(base, bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of a few MiB (root can mount one; CI runs as root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        missing_service(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def clients() -> AsyncIterator[list[CrabClient]]:
    made: list[CrabClient] = []
    yield made
    for client in made:
        client.close()


async def status_of(call: Awaitable[object]) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as err:
        await call
    return err.value.status, err.value.message or ""


async def answer_to(live: SessionStream, cid: str) -> pb.ServerFrame:
    def answers(frame: pb.ServerFrame) -> bool:
        found = frame.ack or frame.send_error
        return found is not None and found.client_message_id == cid

    return await live.wait_for(answers, ANSWER_WAIT)


async def send_acked(live: SessionStream, room: int, text: str) -> int:
    cid = await live.send(room, text)
    frame = await answer_to(live, cid)
    assert frame.ack is not None, frame.send_error
    return frame.ack.message.id


async def room_of_two(
    server: CrabProcess, clients: list[CrabClient]
) -> tuple[CrabClient, CrabClient, int]:
    alice = CrabClient("127.0.0.1", server.port)
    bob = CrabClient("127.0.0.1", server.port)
    clients += [alice, bob]
    await alice.sign_up("alice", PASSWORD)
    await bob.sign_up("bob", PASSWORD)
    return alice, bob, await join_room(alice, bob, "r")


async def open_session(client: CrabClient) -> None:
    async with client.session():
        pass


async def history(client: CrabClient, room: int) -> list[pb.Message]:
    page = await client.chats.get_messages(
        pb.GetMessagesRequest(chat_id=room, limit=200), metadata=client.metadata
    )
    return sorted(page.messages, key=lambda m: m.id)


# ---- PostgreSQL ---------------------------------------------------------------


async def test_postgresql_down_reads_as_unavailable_and_nothing_acked_is_lost(
    postgres: PostgreSQL, tmp_path: Path, clients: list[CrabClient]
) -> None:
    args = ("--database", postgres.url, "--db-outage-wait", OUTAGE_WAIT)
    with CrabProcess.start(tmp_path / "data", *args) as server:
        alice, bob, room = await room_of_two(server, clients)
        acked: dict[int, str] = {}
        async with alice.session() as mine, bob.session() as theirs:
            acked[await send_acked(mine, room, "before")] = "before"

            # A short restart: the send in flight is retried by the worker
            # and acknowledged once PostgreSQL is back; nobody re-sends.
            postgres.stop()
            cid = await mine.send(room, "across the restart")
            postgres.start_again()
            frame = await answer_to(mine, cid)
            assert frame.ack is not None, frame.send_error
            acked[frame.ack.message.id] = "across the restart"

            # A longer outage: every call says "try again", none INTERNAL.
            postgres.stop()
            cid = await mine.send(room, "while down")
            frame = await answer_to(mine, cid)
            assert frame.send_error is not None, frame.ack
            assert (frame.send_error.code, frame.send_error.message) == (
                "UNAVAILABLE",
                UNAVAILABLE_TEXT,
            )
            md = alice.metadata
            newcomer = CrabClient("127.0.0.1", server.port)
            clients.append(newcomer)
            answers = {
                "MyChats": await status_of(alice.chats.my_chats(pb.Empty(), metadata=md)),
                "GetMessages": await status_of(
                    alice.chats.get_messages(pb.GetMessagesRequest(chat_id=room), metadata=md)
                ),
                "SignIn": await status_of(newcomer.sign_in("alice", PASSWORD)),
                "CreateRoom": await status_of(
                    alice.chats.create_room(
                        pb.CreateRoomRequest(name="x", request_id="during-outage"), metadata=md
                    )
                ),
                "Connect": await status_of(open_session(alice)),
            }
            assert answers == dict.fromkeys(answers, (Status.UNAVAILABLE, UNAVAILABLE_TEXT))

            postgres.start_again()
            # Back: the refused send goes again with its id, once.
            deadline = asyncio.get_running_loop().time() + ANSWER_WAIT
            while True:
                await mine.send(room, "while down", client_message_id=cid)
                frame = await answer_to(mine, cid)
                if frame.ack is not None:
                    break
                assert frame.send_error.code == "UNAVAILABLE", frame.send_error
                assert asyncio.get_running_loop().time() < deadline, "never acknowledged"
                await asyncio.sleep(0.5)  # a client's back-off
            acked[frame.ack.message.id] = "while down"
            acked[await send_acked(mine, room, "after")] = "after"
            live = await theirs.collect(lambda f: f.message is not None, len(acked))
            assert {f.message.id: f.message.text for f in live} == acked

        stored = await history(alice, room)
        assert {m.id: m.text for m in stored} == acked  # nothing lost, nothing twice
        assert sorted(acked) == list(range(1, len(acked) + 1))
        room_again = await alice.chats.create_room(
            pb.CreateRoomRequest(name="x", request_id=new_request_id()), metadata=alice.metadata
        )
        assert room_again.id > room
        assert "Traceback" not in server.log
        assert "internal server error" not in server.log


# ---- SQLite on a full disk ----------------------------------------------------------


def fill(path: Path) -> None:
    """Writes `path` until the file system has no byte left."""
    with path.open("wb") as out:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            data = b"\0" * chunk
            while True:
                try:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    # What the last write could not place stays in Python's buffer: dropped.


async def test_a_full_disk_reads_as_resource_exhausted_and_recovers(
    tiny_disk: Path, clients: list[CrabClient]
) -> None:
    with CrabProcess.start(tiny_disk / "data") as server:
        alice, bob, room = await room_of_two(server, clients)
        acked: dict[int, str] = {}
        async with alice.session() as mine, bob.session() as theirs:
            acked[await send_acked(mine, room, "before")] = "before"
            filler = tiny_disk / "filler"
            with contextlib.suppress(OSError):
                fill(filler)

            refused: list[str] = []
            for i in range(200):  # the WAL may still have room for a few
                cid = await mine.send(room, f"on a full disk {i} " + "x" * 2000)
                frame = await answer_to(mine, cid)
                if frame.ack is not None:
                    acked[frame.ack.message.id] = frame.ack.message.text
                    continue
                assert frame.send_error.code == "RESOURCE_EXHAUSTED", frame.send_error
                assert "disk is full" in frame.send_error.message
                refused.append(cid)
                if len(refused) == 50:
                    break
            assert len(refused) == 50, "the disk never filled up"
            # Reads still work.
            await alice.chats.my_chats(pb.Empty(), metadata=alice.metadata)

            filler.unlink()
            for cid in refused:  # the same ids again, as crab chat does
                await mine.send(room, f"again {cid}", client_message_id=cid)
                frame = await answer_to(mine, cid)
                assert frame.ack is not None, frame.send_error
                acked[frame.ack.message.id] = frame.ack.message.text
            acked[await send_acked(mine, room, "after")] = "after"
            live = await theirs.collect(lambda f: f.message is not None, len(acked), 30)
            assert {f.message.id: f.message.text for f in live} == acked

        assert sorted(acked) == list(range(1, len(acked) + 1))
        log = server.log
        assert "Traceback" not in log
        warnings = [line for line in log.splitlines() if "disk is full" in line]
        assert 1 <= len(warnings) <= 3, warnings  # one per 10 s, not one per send
        assert all(" WARNING " in line for line in warnings), warnings


# ---- PostgreSQL away on the scaled shape ------------------------------------------


async def test_on_rabbitmq_a_command_outlasting_the_retries_goes_back_to_the_queue(
    postgres: PostgreSQL,
    rabbitmq_url: str,  # noqa: F811
    tmp_path: Path,
    clients: list[CrabClient],
) -> None:
    """PostgreSQL is away longer than the worker retries: the send is put
    back on the queue, not dropped, and is stored once PostgreSQL returns;
    its requester, still waiting, gets the acknowledgement (no re-send)."""
    env = {"CRAB_JWT_SECRET": secrets.token_urlsafe(32), "CRAB_DB_OUTAGE_WAIT": "1"}
    cluster = Cluster(rabbitmq_url, postgres.url, tmp_path, env)
    try:
        api = cluster.start_api()
        worker = cluster.start_worker()
        alice, bob, room = await room_of_two(api, clients)
        async with alice.session() as mine, bob.session() as theirs:
            assert await send_acked(mine, room, "before") == 1
            postgres.stop()
            cid = await mine.send(room, "while away")
            # Tried for 1 s, then put back (and tried again...): the log says so.
            await asyncio.to_thread(worker.wait_for_line, "go back to the queue", ANSWER_WAIT)
            postgres.start_again()
            frame = await answer_to(mine, cid)
            assert frame.ack is not None, frame.send_error
            assert frame.ack.message.id == 2
            got = await theirs.wait_for(lambda f: f.message is not None and f.message.id == 2)
            assert got.message.text == "while away"
        assert [m.text for m in await history(alice, room)] == ["before", "while away"]
        assert "Traceback" not in worker.log
    finally:
        cluster.stop()
