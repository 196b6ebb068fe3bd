"""A real RabbitMQ restart under the scaled shape. The node is this test's
own: it is stopped and started again (same port, same data) while two API
replicas (`crab serve --no-worker`) and two workers (`crab worker`) run as
processes and clients on both replicas share a room. Nobody is restarted
but RabbitMQ: everyone must recover by themselves."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from h2.exceptions import StreamClosedError

from crab.client.connection import CrabClient, SessionStream
from crab.proto.crab import v1 as pb
from tests.helpers.chats import all_messages
from tests.helpers.cluster import Cluster, join
from tests.helpers.services import RabbitMQ, pg_database_url, private_rabbitmq  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

# The longest any one answer may take before the test fails: a bound on a
# hang, not a measure of speed.
ANSWER_WAIT = 120.0
BEFORE, AFTER = 10, 10  # messages sent before and after the restart
NEW_STREAM_ANSWERS = {"ready", "UNAVAILABLE"}
REFUSED = 3  # reconnect attempts each process sees refused while RabbitMQ is away
NEWCOMERS = 80  # users on B whose first stream opens around the restart

T = TypeVar("T")


@pytest.fixture
def node() -> Iterator[RabbitMQ]:
    """A RabbitMQ node for this test only: stopping it disturbs nobody else."""
    with private_rabbitmq("crab-rabbitmq-restart-") as found:
        yield found


@pytest.fixture
def cluster(
    node: RabbitMQ,
    pg_database_url: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Cluster]:
    with Cluster.running(node.url, pg_database_url, tmp_path) as found:
        yield found


class Reader:
    """Reads a client's session stream on a task, keeping every frame. When
    the server ends it with UNAVAILABLE (a replica back from a lost broker
    link ends them all), it resumes from the newest id seen in `chat_id`, as
    crab chat does; the frames of every stream follow one another."""

    def __init__(self, client: CrabClient, live: SessionStream, chat_id: int) -> None:
        self.client = client
        self.chat_id = chat_id
        self.live = live
        self.resumed = 0  # streams opened again after one ended with UNAVAILABLE
        self.frames: list[pb.ServerFrame] = list(live.backlog)
        self._open = asyncio.Event()
        self._open.set()
        self._streams = contextlib.AsyncExitStack()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                try:
                    while (frame := await self.live.recv()) is not None:
                        self.frames.append(frame)
                        self._changed.set()
                    return
                except GRPCError as error:
                    if error.status != Status.UNAVAILABLE:
                        raise
                self._open.clear()
                self._changed.set()
                await self._resume()
        finally:
            self._changed.set()

    async def _resume(self) -> None:
        async with asyncio.timeout(ANSWER_WAIT):
            while True:
                ids = self.message_ids()
                cursors = {self.chat_id: ids[-1]} if ids else {}
                try:
                    live = await self._streams.enter_async_context(self.client.session(cursors))
                except GRPCError as error:
                    if error.status != Status.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.5)  # the client's back-off
                    continue
                self.frames.extend(live.backlog)
                self.live = live
                self.resumed += 1
                self._open.set()
                self._changed.set()
                return

    async def until_open(self) -> SessionStream:
        async with asyncio.timeout(ANSWER_WAIT):
            await self._open.wait()
        return self.live

    async def until(self, found: Callable[[], T | None], what: str) -> T:
        async with asyncio.timeout(ANSWER_WAIT):
            while True:
                self._changed.clear()
                if (result := found()) is not None:
                    return result
                if self._task.done():
                    error = None if self._task.cancelled() else self._task.exception()
                    raise AssertionError(f"the stream ended ({error!r}) before {what}")
                await self._changed.wait()

    def messages(self) -> list[pb.Message]:
        return [f.message for f in self.frames if f.message is not None]

    def message_ids(self) -> list[int]:
        return [m.id for m in self.messages()]

    async def up_to(self, last: int) -> list[int]:
        """The message ids seen, once the newest is at least `last`."""
        await self.until(lambda: True if last in self.message_ids() else None, f"id {last}")
        return self.message_ids()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._streams.aclose()


@dataclass
class Tally:
    sent: int = 0  # send frames written, re-sends included
    unavailable: int = 0  # answered UNAVAILABLE ("try again")
    acked: dict[str, int] = field(default_factory=dict)  # client message id -> message id
    first_answers: dict[str, str] = field(default_factory=dict)  # client id -> ack / code
    unanswered: int = 0  # sent on a stream the server ended before answering


async def send_once(reader: Reader, chat_id: int, text: str, cid: str, tally: Tally) -> bool:
    """One send and its answer: True if acknowledged; an UNAVAILABLE answer,
    or a stream that ended before answering, is False; anything else (or no
    answer at all) fails the test."""
    live = await reader.until_open()
    mark = len(reader.frames)
    with contextlib.suppress(StreamTerminatedError, ProtocolError, StreamClosedError):
        await live.send(chat_id, text, client_message_id=cid)  # the stream may be ending
    tally.sent += 1

    def answer() -> pb.ServerFrame | str | None:
        for frame in reader.frames[mark:]:
            found = frame.ack or frame.send_error
            if found is not None and found.client_message_id == cid:
                return frame
        return "ended" if reader.live is not live else None

    frame = await reader.until(answer, f"an answer to {cid}")
    if isinstance(frame, str):  # sent again on the resumed stream, as crab chat does
        tally.first_answers.setdefault(cid, "stream ended")
        tally.unanswered += 1
        return False
    if frame.ack is not None:
        tally.first_answers.setdefault(cid, "ack")
        # A re-send is answered with the message stored the first time.
        assert tally.acked.setdefault(cid, frame.ack.message.id) == frame.ack.message.id
        return True
    tally.first_answers.setdefault(cid, frame.send_error.code)
    assert frame.send_error.code == "UNAVAILABLE", frame.send_error
    tally.unavailable += 1
    return False


async def send_until_acked(reader: Reader, chat_id: int, text: str, cid: str, tally: Tally) -> int:
    """Sends with one client message id until acknowledged, as crab chat does."""
    for _ in range(60):
        if await send_once(reader, chat_id, text, cid, tally):
            return tally.acked[cid]
        await asyncio.sleep(1)  # a client's back-off before trying again
    raise AssertionError(f"{text!r} was never acknowledged")


async def keep_sending(
    reader: Reader, chat_id: int, tally: Tally, refused: list[str], stop: asyncio.Event
) -> None:
    """Steady traffic, one send after another's answer, until `stop`: so
    some are in flight whenever RabbitMQ goes. Refused ones are kept to be
    sent again."""
    for i in range(10_000):
        if stop.is_set():
            return
        cid = f"steady-{i}"
        if not await send_once(reader, chat_id, cid, cid, tally):
            refused.append(cid)
            await asyncio.sleep(0.2)  # a client's back-off
    raise AssertionError("never told to stop")


async def open_stream(client: CrabClient, cursors: dict[int, int] | None = None) -> str:
    """Opens a new session stream and leaves it: "ready", or how it was refused."""
    try:
        async with asyncio.timeout(ANSWER_WAIT), client.session(cursors):
            return "ready"
    except GRPCError as exc:
        return exc.status.name


def assert_alive(cluster: Cluster) -> None:
    for process in [*cluster.apis, *cluster.workers]:
        assert process.proc.poll() is None, f"{process.args[0]} exited:\n{process.log}"


async def test_everyone_recovers_when_rabbitmq_restarts(
    node: RabbitMQ,
    cluster: Cluster,
    clients: list[CrabClient],
) -> None:
    a, b = cluster.apis
    alice = await join(a, "alice", clients)
    carol = await join(a, "carol", clients)
    bob = await join(b, "bob", clients)
    dave = await join(b, "dave", clients)
    room = await alice.chats.create_room(pb.CreateRoomRequest(name="r"), metadata=alice.metadata)
    for friend in (bob, carol, dave):
        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=room.id, user_id=friend.user.id), metadata=alice.metadata
        )
        await friend.invites.answer_invite(
            pb.AnswerInviteRequest(invite_id=invite.id, accept=True), metadata=friend.metadata
        )
    # Each stream opened around the restart is a newcomer's first: B has to
    # bind a topic for it (a second stream of one user binds nothing new).
    newcomers = [await join(b, f"newcomer{i}", clients) for i in range(NEWCOMERS)]
    fresh = iter(newcomers)
    tally = Tally()
    new_streams: list[str] = []  # how each new stream opened around the restart was answered

    # Alice (on A) and Bob (on B) keep their streams through the restart;
    # Carol (on A) leaves before it and resumes after; newcomers (on B) open
    # new streams while RabbitMQ is down and while it comes back; Dave (on B)
    # too, then opens one from the start once it is back.
    async with alice.session() as a_live, bob.session() as b_live:
        alice_r, bob_r = Reader(alice, a_live, room.id), Reader(bob, b_live, room.id)
        async with carol.session() as c_live:
            carol_r = Reader(carol, c_live, room.id)
            for i in range(BEFORE):
                await send_until_acked(alice_r, room.id, f"before {i}", f"before-{i}", tally)
            carol_seen = await carol_r.up_to(BEFORE)
            await bob_r.up_to(BEFORE)
            await carol_r.stop()
        assert carol_seen == list(range(1, BEFORE + 1))

        # Alice keeps sending while RabbitMQ stops: sends in flight, in a
        # worker's hands, or waiting for a reply are all answered somehow.
        stop_sending = asyncio.Event()
        refused: list[str] = []
        steady = asyncio.create_task(keep_sending(alice_r, room.id, tally, refused, stop_sending))
        await alice_r.until(lambda: True if tally.acked.get("steady-2") else None, "steady-2")
        await asyncio.to_thread(node.stop_node)
        stop_sending.set()
        await steady
        # RabbitMQ is down. A send is answered (UNAVAILABLE or acknowledged),
        # on either replica; a new stream is refused with UNAVAILABLE or works.
        await asyncio.gather(
            send_once(alice_r, room.id, "during from A", "during-a", tally),
            send_once(bob_r, room.id, "during from B", "during-b", tally),
        )
        new_streams.append(await open_stream(dave))
        new_streams.append(await open_stream(next(fresh)))
        # RabbitMQ stays away until every replica and worker has seen it go and
        # been refused REFUSED times trying again (restarted at once, once under
        # load, the node was never reachable again: an outage needs a length).
        await asyncio.to_thread(cluster.each_logged, "lost the connection to RabbitMQ", ANSWER_WAIT)
        await asyncio.to_thread(cluster.each_logged, "Connection refused", ANSWER_WAIT, REFUSED)
        assert_alive(cluster)

        starting = asyncio.create_task(asyncio.to_thread(node.start))
        while not starting.done():  # a new stream every half second while the node starts
            new_streams.append(await open_stream(next(fresh, dave)))
            await asyncio.wait({starting}, timeout=0.5)
        await starting
        await asyncio.to_thread(cluster.each_logged, "reconnected to RabbitMQ", ANSWER_WAIT)
        for _ in range(60):  # once RabbitMQ is back, new streams work again
            new_streams.append(await open_stream(next(fresh, dave)))
            if new_streams[-1] == "ready":
                break
            await asyncio.sleep(1)  # a client's back-off before trying again
        assert new_streams[-1] == "ready", new_streams
        assert set(new_streams) <= NEW_STREAM_ANSWERS, new_streams

        # Sends answered UNAVAILABLE go again with the same id: stored once.
        for cid in refused:
            await send_until_acked(alice_r, room.id, cid, cid, tally)
        await send_until_acked(alice_r, room.id, "during from A", "during-a", tally)
        await send_until_acked(bob_r, room.id, "during from B", "during-b", tally)
        for i in range(AFTER):
            await send_until_acked(alice_r, room.id, f"after {i}", f"after-{i}", tally)
        from_bob = await send_until_acked(bob_r, room.id, "from B", "from-b", tally)
        await alice_r.up_to(from_bob)  # B -> A
        last = await send_until_acked(alice_r, room.id, "last", "last", tally)  # A -> B

        stored = await all_messages(alice, room.id)
        stored_ids = [m.id for m in stored]
        # The streams kept open: every stored message once, in order, no gap.
        assert await alice_r.up_to(last) == stored_ids
        assert await bob_r.up_to(last) == stored_ids
        # Back from the lost link, each replica ended its streams (events sent
        # meanwhile were lost); both clients resumed, missing nothing.
        assert alice_r.resumed >= 1 and bob_r.resumed >= 1
        await alice_r.stop()
        await bob_r.stop()

    # Carol resumes on A from what she saw; Dave opens a new stream on B from the start.
    async with carol.session({room.id: carol_seen[-1]}) as c_live:
        assert carol_seen + [f.message.id for f in c_live.backlog if f.message] == stored_ids
    async with dave.session({room.id: 0}) as d_live:
        assert [f.message.id for f in d_live.backlog if f.message] == stored_ids
        # Dave's own topic is bound on B again (a stream of his was refused while
        # RabbitMQ was away): an invite sent through A reaches him live.
        second = await alice.chats.create_room(
            pb.CreateRoomRequest(name="second"), metadata=alice.metadata
        )
        invite = await alice.invites.invite_to_room(
            pb.RoomInviteRequest(chat_id=second.id, user_id=dave.user.id), metadata=alice.metadata
        )
        got = await d_live.wait_for(lambda f: f.invite_received is not None, ANSWER_WAIT)
        assert got.invite_received.id == invite.id

    assert_alive(cluster)
    cids = [m.client_message_id for m in stored]
    duplicates = len(cids) - len(set(cids))
    answers = collections.Counter(new_streams)
    print(
        f"\nRabbitMQ restart: sent {tally.sent}, acked {len(tally.acked)}, "
        f"stored {len(stored)}, duplicates {duplicates}, "
        f"answered UNAVAILABLE {tally.unavailable} (steady sends refused {len(refused)}), "
        f"unanswered on an ended stream {tally.unanswered}, "
        f"sends while down {tally.first_answers['during-a']}/{tally.first_answers['during-b']}, "
        f"new streams {dict(answers)}"
    )
    assert stored_ids == list(range(1, len(stored) + 1))  # gap-free
    assert duplicates == 0
    assert {m.client_message_id: m.id for m in stored} == tally.acked  # all acked, all stored
    steady_sends = len({cid for cid in tally.acked if cid.startswith("steady-")})
    assert len(stored) == BEFORE + steady_sends + 2 + AFTER + 2
