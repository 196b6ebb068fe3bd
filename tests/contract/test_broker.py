"""The broker contract (shared/DESIGN.md, "Broker contract"), one suite for
both adapters. Where the two keep different guarantees the test says so;
tests that take `amqp` instead of `brokers` check what only a real broker
can promise (another process, a connection to lose), each saying why."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crab.core.app import create_broker
from crab.core.broker.amqp import AmqpBroker
from crab.core.broker.base import Broker, Outcome
from crab.core.broker.memory import MemoryBroker
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import Chat, ChatKind, Message, User
from crab.errors import NotFound, Unavailable
from tests.contract.conftest import Brokers
from tests.contract.link import Link

WHEN = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
WAIT = 20.0  # the longest any single wait may take before the test fails
REPO = Path(__file__).resolve().parents[2]


def answer(command: cmd.Command) -> Outcome:
    """The test worker: a result per kind of command, or an error."""
    match command:
        case cmd.CreateRoom(creator_id=creator, name=name):
            return Outcome(result=Chat(creator, ChatKind.ROOM, name, WHEN))
        case cmd.SendMessage(sender_id=sender, chat_id=chat, client_message_id=cid, text=text):
            return Outcome(result=Message(chat, 1, User(sender, "u", "U"), text, WHEN, cid))
        case cmd.LeaveChat():
            return Outcome()
        case _:
            return Outcome(error=NotFound(f"nothing for {command!r}"))


async def echo(batch: Sequence[cmd.Command]) -> list[Outcome]:
    return [answer(c) for c in batch]


def room(i: int) -> cmd.CreateRoom:
    return cmd.CreateRoom(creator_id=i, name=f"room {i}")


def room_chat(i: int) -> Chat:
    return Chat(i, ChatKind.ROOM, f"room {i}", WHEN)


class Recorder:
    """A batch handler that records what it saw and can hold batches."""

    def __init__(self, hold_first: asyncio.Event | None = None) -> None:
        self.batches: list[list[cmd.Command]] = []
        self.started = asyncio.Event()
        self.hold_first = hold_first

    async def __call__(self, batch: Sequence[cmd.Command]) -> list[Outcome]:
        self.batches.append(list(batch))
        self.started.set()
        if self.hold_first is not None and len(self.batches) == 1:
            await self.hold_first.wait()
        return await echo(batch)

    @property
    def commands(self) -> list[cmd.Command]:
        return [c for b in self.batches for c in b]


class Received:
    """An event handler that records and lets the test wait for a condition."""

    def __init__(self) -> None:
        self.items: list[tuple[str, ev.Event]] = []
        self._changed = asyncio.Event()

    async def __call__(self, topic: str, event: ev.Event) -> None:
        self.items.append((topic, event))
        self._changed.set()

    async def until(self, ready: Callable[[list[tuple[str, ev.Event]]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not ready(self.items):
                self._changed.clear()
                await self._changed.wait()

    async def until_count(self, n: int) -> None:
        await self.until(lambda items: len(items) >= n)


def left(user_id: int, chat_id: int = 1) -> ev.ChatLeft:
    return ev.ChatLeft(user_id=user_id, chat_id=chat_id)


def test_the_url_picks_the_adapter() -> None:
    assert isinstance(create_broker("memory://"), MemoryBroker)
    assert isinstance(create_broker("amqp://guest:guest@127.0.0.1:5672/"), AmqpBroker)
    with pytest.raises(ValueError, match="unsupported"):
        create_broker("kafka://localhost")


# ---- commands -----------------------------------------------------------------


async def test_request_returns_the_handlers_result(broker: Broker) -> None:
    await broker.consume(echo)
    assert await broker.request(room(7), timeout=WAIT) == room_chat(7)
    message = await broker.request(cmd.SendMessage(3, 7, "c-1", "hi 🦀"), timeout=WAIT)
    assert message == Message(7, 1, User(3, "u", "U"), "hi 🦀", WHEN, "c-1")
    assert await broker.request(cmd.LeaveChat(3, 7), timeout=WAIT) is None


async def test_request_raises_the_handlers_error(broker: Broker) -> None:
    await broker.consume(echo)
    with pytest.raises(NotFound, match="nothing for"):
        await broker.request(cmd.InviteToDirect(1, 2), timeout=WAIT)


async def test_request_without_a_worker_times_out_as_unavailable(broker: Broker) -> None:
    with pytest.raises(Unavailable):
        await broker.request(room(1), timeout=0.3)


async def test_competing_consumers_handle_each_command_exactly_once(brokers: Brokers) -> None:
    requester = await brokers.new()
    a, b = Recorder(), Recorder()
    # Each holds its first batch until the other has one: both must take part.
    a.hold_first, b.hold_first = b.started, a.started
    await (await brokers.new()).consume(a, batch_size=10)
    await (await brokers.new()).consume(b, batch_size=10)

    results = await asyncio.gather(*(requester.request(room(i), timeout=WAIT) for i in range(200)))

    assert results == [room_chat(i) for i in range(200)]
    counts = collections.Counter(c.creator_id for c in a.commands + b.commands)  # type: ignore[union-attr]
    assert sorted(counts) == list(range(200))
    assert set(counts.values()) == {1}
    assert a.commands and b.commands
    assert all(len(batch) <= 10 for batch in a.batches + b.batches)


async def test_a_consumer_gets_batches_when_many_are_waiting(brokers: Brokers) -> None:
    requester = await brokers.new()
    release = asyncio.Event()
    worker = Recorder(hold_first=release)
    await (await brokers.new()).consume(worker, batch_size=50)

    requests = [asyncio.create_task(requester.request(room(i), timeout=WAIT)) for i in range(100)]
    async with asyncio.timeout(WAIT):
        await worker.started.wait()  # the first batch is held; the rest pile up
    release.set()
    assert await asyncio.gather(*requests) == [room_chat(i) for i in range(100)]

    sizes = [len(batch) for batch in worker.batches]
    assert sum(sizes) == 100
    assert max(sizes) > 1, sizes
    assert max(sizes) <= 50


async def test_a_failing_handler_does_not_lose_the_consumer(brokers: Brokers) -> None:
    """A handler that raises (a bug, a lost database) never stops the
    consumer. What becomes of the failed command differs, honestly:
    memory fails the batch's requests with the exception; AMQP puts the
    command back once and it is handled on the next delivery."""
    requester = await brokers.new()
    calls: list[list[cmd.Command]] = []

    async def flaky(batch: Sequence[cmd.Command]) -> list[Outcome]:
        calls.append(list(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return await echo(batch)

    await (await brokers.new()).consume(flaky)
    if brokers.kind == "memory":
        with pytest.raises(RuntimeError, match="boom"):
            await requester.request(room(1), timeout=WAIT)
    else:
        assert await requester.request(room(1), timeout=WAIT) == room_chat(1)
        assert calls[:2] == [[room(1)], [room(1)]]  # the same command, delivered again
    assert await requester.request(room(2), timeout=WAIT) == room_chat(2)


async def test_a_command_that_always_fails_is_answered_and_spares_its_batch(
    amqp: Brokers,
) -> None:
    """AMQP only: memory fails the whole batch with the handler's exception."""
    brokers = amqp
    requester = await brokers.new()
    release = asyncio.Event()
    handled: list[cmd.Command] = []

    async def poisoned(batch: Sequence[cmd.Command]) -> list[Outcome]:
        await release.wait()
        if room(0) in batch:
            raise RuntimeError("poison")
        handled.extend(batch)
        return await echo(batch)

    await (await brokers.new()).consume(poisoned, batch_size=20)
    requests = [asyncio.create_task(requester.request(room(i), timeout=WAIT)) for i in range(10)]
    release.set()
    results = await asyncio.gather(*requests, return_exceptions=True)

    assert isinstance(results[0], Unavailable)
    assert results[1:] == [room_chat(i) for i in range(1, 10)]
    assert sorted(c.creator_id for c in handled) == list(range(1, 10))  # type: ignore[union-attr]


async def test_close_lets_the_batch_in_hand_finish(brokers: Brokers) -> None:
    requester = await brokers.new()
    worker_broker = await brokers.new()
    release = asyncio.Event()
    worker = Recorder(hold_first=release)
    await worker_broker.consume(worker)

    request = asyncio.create_task(requester.request(room(1), timeout=WAIT))
    async with asyncio.timeout(WAIT):
        await worker.started.wait()
    closing = asyncio.create_task(worker_broker.close())
    # A window for close() to finish early, which it must not do.
    done, _ = await asyncio.wait({closing}, timeout=0.3)
    assert not done, "close() returned while a batch was in hand"
    release.set()
    async with asyncio.timeout(WAIT):
        await closing
    assert await request == room_chat(1)

    if brokers.kind == "amqp":  # and it was acknowledged: nobody gets it again
        again = Recorder()
        await (await brokers.new()).consume(again)
        assert await requester.request(room(2), timeout=WAIT) == room_chat(2)
        assert again.commands == [room(2)]


async def test_close_stops_taking_commands(amqp: Brokers) -> None:
    """AMQP only: a closed memory broker is the whole process; nobody is left to ask."""
    brokers = amqp
    requester = await brokers.new()
    first = await brokers.new()
    first_worker = Recorder()
    await first.consume(first_worker)
    await first.close()
    second_worker = Recorder()
    await (await brokers.new()).consume(second_worker)
    assert await requester.request(room(1), timeout=WAIT) == room_chat(1)
    assert first_worker.commands == [] and second_worker.commands == [room(1)]


# ---- events -------------------------------------------------------------------


async def test_events_reach_only_bound_topics(brokers: Brokers) -> None:
    publisher, server = await brokers.new(), await brokers.new()
    received = Received()
    subscription = await server.subscribe(received)
    await subscription.bind("chat.1")
    await subscription.bind("user.3")

    await publisher.publish("chat.2", left(1, 2))  # nobody bound: dropped
    await publisher.publish("chat.1", left(2, 1))
    await publisher.publish("user.4", left(4, 9))
    await publisher.publish("user.3", left(3, 9))
    await received.until_count(2)

    # Published in order on one link, so anything unbound would have come first.
    assert received.items == [("chat.1", left(2, 1)), ("user.3", left(3, 9))]


async def test_unbind_stops_delivery(brokers: Brokers) -> None:
    publisher, server = await brokers.new(), await brokers.new()
    received = Received()
    subscription = await server.subscribe(received)
    await subscription.bind("chat.1")
    await subscription.bind("chat.2")
    await publisher.publish("chat.1", left(1))
    await received.until_count(1)

    await subscription.unbind("chat.1")
    await publisher.publish("chat.1", left(2))
    await publisher.publish("chat.2", left(3, 2))
    await received.until_count(2)
    assert received.items == [("chat.1", left(1)), ("chat.2", left(3, 2))]

    await subscription.unbind("chat.5")  # never bound: nothing happens
    await subscription.close()


async def test_each_subscription_gets_its_own_copy(brokers: Brokers) -> None:
    publisher = await brokers.new()
    first, second, third = Received(), Received(), Received()
    for server, handler in ((await brokers.new(), first), (await brokers.new(), second)):
        subscription = await server.subscribe(handler)
        await subscription.bind("chat.1")
    other = await (await brokers.new()).subscribe(third)
    await other.bind("chat.1")
    await other.bind("chat.2")

    await publisher.publish("chat.1", left(1))
    await publisher.publish("chat.2", left(2, 2))
    await first.until_count(1)
    await second.until_count(1)
    await third.until_count(2)
    assert first.items == second.items == [("chat.1", left(1))]
    assert third.items == [("chat.1", left(1)), ("chat.2", left(2, 2))]


async def test_events_keep_their_order_per_topic(brokers: Brokers) -> None:
    publisher, server = await brokers.new(), await brokers.new()
    received = Received()
    subscription = await server.subscribe(received)
    for topic in ("chat.1", "chat.2", "user.1"):
        await subscription.bind(topic)

    topics = ["chat.1", "chat.2", "user.1"]
    for i in range(300):
        await publisher.publish(topics[i % 3], left(i, i % 3))
    await received.until_count(300)

    for n, topic in enumerate(topics):
        seen = [e.user_id for t, e in received.items if t == topic]  # type: ignore[union-attr]
        assert seen == list(range(n, 300, 3))


async def test_a_failing_event_handler_does_not_stop_the_subscription(brokers: Brokers) -> None:
    publisher, server = await brokers.new(), await brokers.new()
    received = Received()

    async def picky(topic: str, event: ev.Event) -> None:
        if event == left(1):
            raise RuntimeError("boom")
        await received(topic, event)

    subscription = await server.subscribe(picky)
    await subscription.bind("chat.1")
    await publisher.publish("chat.1", left(1))
    await publisher.publish("chat.1", left(2))
    await received.until_count(1)
    assert received.items == [("chat.1", left(2))]


async def test_closed_subscription_gets_nothing_more(brokers: Brokers) -> None:
    publisher, server = await brokers.new(), await brokers.new()
    gone, staying = Received(), Received()
    closed = await server.subscribe(gone)
    await closed.bind("chat.1")
    kept = await server.subscribe(staying)
    await kept.bind("chat.1")
    await publisher.publish("chat.1", left(1))
    await gone.until_count(1)
    await staying.until_count(1)

    await closed.close()
    await publisher.publish("chat.1", left(2))
    await staying.until_count(2)
    assert gone.items == [("chat.1", left(1))]


# ---- failures only a real broker survives -------------------------------------


async def test_a_killed_worker_has_its_commands_delivered_to_another(amqp: Brokers) -> None:
    """AMQP only: the memory broker has no second process to deliver to."""
    brokers = amqp
    requester = await brokers.new()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.contract.held_worker",
        brokers.url,
        brokers.prefix,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(WAIT):
            assert await process.stdout.readline() == b"ready\n"
            requests = [
                asyncio.create_task(requester.request(room(i), timeout=WAIT)) for i in range(5)
            ]
            held = json.loads(await process.stdout.readline())
        assert held, "the worker took a batch"
        survivor = Recorder()
        await (await brokers.new()).consume(survivor)
        process.kill()  # mid-batch: nothing acknowledged

        assert await asyncio.gather(*requests) == [room_chat(i) for i in range(5)]
        assert set(held) <= {c.name for c in survivor.commands}  # type: ignore[union-attr]
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_lost_connection_comes_back_with_bindings_and_consumers(amqp: Brokers) -> None:
    """AMQP only: the memory broker has no connection to lose."""
    brokers = amqp
    link = Link(int(brokers.url.rsplit(":", 1)[1].strip("/")))
    await link.start()
    try:
        remote = await brokers.new()
        server = await brokers.new(url=f"amqp://guest:guest@127.0.0.1:{link.port}/")
        assert isinstance(server, AmqpBroker)
        received = Received()
        lost = asyncio.Event()  # the subscription says events may be gone
        subscription = await server.subscribe(received, lost.set)
        await subscription.bind("chat.1")
        await subscription.bind("user.1")
        await subscription.unbind("user.1")
        worker = Recorder()
        await server.consume(worker)
        await remote.publish("chat.1", left(0))
        await received.until_count(1)
        assert not lost.is_set()

        reconnected = asyncio.Event()
        server.connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        link.cut()
        async with asyncio.timeout(WAIT):
            await reconnected.wait()  # fires once channels, queues and bindings are restored
            await lost.wait()  # the queue was gone meanwhile: its events with it
        assert link.accepted == 2

        await remote.publish("user.1", left(1))  # unbound before the cut: stays unbound
        await remote.publish("chat.1", left(2))
        await received.until_count(2)
        assert received.items[-1] == ("chat.1", left(2))
        assert await remote.request(room(3), timeout=WAIT) == room_chat(3)  # consumer back
        assert await server.request(room(4), timeout=WAIT) == room_chat(4)  # reply queue back
        assert [c for c in worker.commands if c != room(3)] == [room(4)]
    finally:
        await link.close()


async def test_a_cancelled_bind_leaves_the_subscription_intact(brokers: Brokers) -> None:
    """A session's task is cancelled whenever its client goes away, maybe in
    the middle of a bind: events already flowing are neither lost nor
    delivered twice."""
    publisher, server = await brokers.new(), await brokers.new()
    received = Received()
    subscription = await server.subscribe(received)
    await subscription.bind("chat.1")
    for i in range(100):
        await publisher.publish("chat.1", left(i))
    for yields in range(8):  # cancelled at each step of its way, whatever they are
        binding = asyncio.create_task(subscription.bind("chat.2"))
        for _ in range(yields):
            await asyncio.sleep(0)  # a yield, not a wait
        binding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await binding
    for i in range(100, 200):
        await publisher.publish("chat.1", left(i))
    await received.until_count(200)
    await subscription.bind("chat.3")
    await publisher.publish("chat.3", left(200, 3))
    await received.until_count(201)
    assert [e.user_id for _, e in received.items] == list(range(201))  # type: ignore[union-attr]


class Outage(Link):
    """A link RabbitMQ can be away behind: taken down, its connections are
    cut and new ones refused (as while a node restarts); brought up, it
    forwards again."""

    down = False

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        await super()._forward(reader, writer)

    def take_down(self) -> None:
        self.down = True
        self.cut()


async def test_while_the_broker_is_away_steps_wait_for_it_or_answer_unavailable(
    amqp: Brokers,
) -> None:
    """AMQP only: the memory broker has no connection to lose. Bind, request
    and publish wait (a bounded while) for RabbitMQ to come back and then go
    ahead, or raise Unavailable (a client's "try again"), never anything
    else; unbind never waits. What was asked for while away holds once back."""
    brokers = amqp
    link = Outage(int(brokers.url.rsplit(":", 1)[1].strip("/")))
    await link.start()
    url = f"amqp://guest:guest@127.0.0.1:{link.port}/"
    patient = AmqpBroker(url, prefix=brokers.prefix, reconnect_wait=WAIT, publish_timeout=WAIT)
    hasty = AmqpBroker(url, prefix=brokers.prefix, reconnect_wait=0.2, publish_timeout=0.2)
    try:
        remote = await brokers.new()
        await remote.consume(echo)
        await patient.start()
        await hasty.start()
        got_patient, got_hasty = Received(), Received()
        waiting = await patient.subscribe(got_patient)
        await waiting.bind("chat.1")
        await waiting.bind("chat.3")
        giving_up = await hasty.subscribe(got_hasty)
        await giving_up.bind("chat.1")
        await remote.publish("chat.1", left(0))
        await got_patient.until_count(1)
        await got_hasty.until_count(1)

        lost = {patient: asyncio.Event(), hasty: asyncio.Event()}
        for broker, event in lost.items():
            broker.connection.close_callbacks.add(lambda *_, seen=event: seen.set())
        link.take_down()
        async with asyncio.timeout(WAIT):  # both have noticed
            await asyncio.gather(*(event.wait() for event in lost.values()))
        with pytest.raises(Unavailable):
            await giving_up.bind("chat.2")
        await giving_up.unbind("chat.1")  # let go while away: done on the way back
        with pytest.raises(Unavailable):
            await hasty.request(room(1), timeout=WAIT)
        with pytest.raises(Unavailable):
            await hasty.publish("chat.1", left(1))
        steps = [
            asyncio.create_task(waiting.bind("chat.2")),
            asyncio.create_task(patient.request(room(2), timeout=WAIT)),
            asyncio.create_task(patient.publish("chat.3", left(3, 3))),
        ]
        # A window for them to finish early, which they cannot do.
        done, _ = await asyncio.wait(steps, timeout=0.3)
        assert not done, "a step went ahead while RabbitMQ was away"

        link.down = False
        async with asyncio.timeout(WAIT):
            assert await asyncio.gather(*steps) == [None, room_chat(2), None]
        await got_patient.until_count(2)
        assert got_patient.items[1] == ("chat.3", left(3, 3))  # published once back
        async with asyncio.timeout(WAIT):  # a client trying again until it is back
            while True:
                try:
                    assert await hasty.request(room(4), timeout=WAIT) == room_chat(4)
                    break
                except Unavailable:
                    await asyncio.sleep(0.05)
        await remote.publish("chat.1", left(5))
        await remote.publish("chat.2", left(6, 2))
        await got_hasty.until_count(2)
        await got_patient.until_count(4)
        # Hasty bound chat.2 and let chat.1 go, as asked while RabbitMQ was away.
        assert got_hasty.items == [("chat.1", left(0)), ("chat.2", left(6, 2))]
        assert got_patient.items[2:] == [("chat.1", left(5)), ("chat.2", left(6, 2))]
    finally:
        await hasty.close()
        await patient.close()
        await link.close()


async def test_start_waits_for_a_rabbitmq_still_booting(amqp: Brokers) -> None:
    """AMQP only: a replica started with (or before) its RabbitMQ finds it
    accepting TCP and hanging up mid-handshake while it boots; `start` tries
    again until it answers, instead of the process exiting."""
    link = Outage(int(amqp.url.rsplit(":", 1)[1].strip("/")))
    await link.start()
    link.take_down()
    broker = AmqpBroker(f"amqp://guest:guest@127.0.0.1:{link.port}/", prefix=amqp.prefix)
    starting = asyncio.create_task(broker.start(wait=WAIT))
    try:
        await asyncio.sleep(1.5)  # several refused handshakes
        assert not starting.done()
        link.down = False
        await asyncio.wait_for(starting, WAIT)
        assert broker.online
    finally:
        starting.cancel()
        await broker.close()
        await link.close()


async def test_start_gives_up_after_its_wait(amqp: Brokers) -> None:
    link = Outage(int(amqp.url.rsplit(":", 1)[1].strip("/")))
    await link.start()
    link.take_down()
    broker = AmqpBroker(f"amqp://guest:guest@127.0.0.1:{link.port}/", prefix=amqp.prefix)
    try:
        with pytest.raises((ConnectionError, EOFError, OSError)):
            await broker.start(wait=0.5)
    finally:
        await link.close()
