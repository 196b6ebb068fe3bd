"""Load-generator processes and the pool that drives them.

Each process runs its own event loop (uvloop) with a share of the clients
("bots"), spread over several grpclib channels (at most `per_channel`
streams each: a grpclib server takes ~100 per HTTP/2 connection). The
coordinator sends a request (protocol.py: typed, its type names the reply)
down a pipe and gets exactly one answer per request; progress counters go
through shared memory so the coordinator can draw a progress bar without
asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import time
import traceback
from array import array
from collections.abc import Callable, Mapping
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

import psutil
from grpclib.client import Channel

from crab_bench import rpc
from crab_bench import wire as w
from crab_bench.h2raw import RawConnection, RawStream
from crab_bench.protocol import (
    Accept,
    Connect,
    Drain,
    Drained,
    Fanout,
    History,
    Pace,
    Paced,
    Pages,
    Quit,
    Request,
    Reset,
    Searches,
    Sent,
    SignedIn,
    SignIn,
    SignIns,
    SignUp,
    Status,
    Streams,
    UserSignIns,
)
from crab_bench.server import BenchError, Endpoint, raise_open_files

R = TypeVar("R")

MAX_PER_CHANNEL = 80
SETUP_CONCURRENCY = 32  # sign-ups / invites / stream opens in flight per process
ACK_TIMEOUT = 30.0
CONNECT_TIMEOUT = 60.0
COUNTERS = 3  # per process in shared memory: acks, deliveries, setup steps


class Bot:
    """One client: an account, its channel, its session stream, what it got."""

    __slots__ = (
        "channel",
        "error",
        "ids",
        "index",
        "latencies",
        "name",
        "pending",
        "ready",
        "stream",
        "times",
        "token",
        "user_id",
    )

    def __init__(self, index: int, name: str, channel: Channel) -> None:
        self.index = index
        self.name = name
        self.channel = channel
        self.token = ""
        self.user_id = 0
        self.stream: RawStream | None = None
        self.ready: asyncio.Future[None] | None = None
        self.error: str | None = None
        self.pending: dict[str, asyncio.Future[tuple[int, float]]] = {}
        self.ids = array("q")  # room message ids in arrival order
        self.latencies = array("d")  # receive time - send time (s)
        self.times = array("d")  # receive time (time.time())


class LoadWorker:
    """A load-generator process: one method per request of protocol.py."""

    def __init__(
        self,
        index: int,
        conn: Connection,
        endpoint: Endpoint,
        per_channel: int,
        progress: Any,
        stop: Any,
    ) -> None:
        self.index = index
        self.conn = conn
        self.endpoint = endpoint
        self.per_channel = max(1, min(per_channel, MAX_PER_CHANNEL))
        self.progress = progress
        self.stop = stop
        self.m = w.wire()
        self.bots: dict[int, Bot] = {}
        self.watchers: list[Bot] = []  # bots whose room deliveries are recorded
        self.channels: list[Channel] = []  # grpclib, for unary calls
        self._slots = 0
        self.connections: list[asyncio.Task[RawConnection]] = []  # for session streams
        self._raw_slots = 0
        self.acks = 0
        self.delivered = 0
        self.setups = 0  # accounts made, invites answered, streams opened
        self.chat_id = 0

    # ---- plumbing --------------------------------------------------------

    async def serve(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                request: Request[Any] = await asyncio.to_thread(self.conn.recv)
                if isinstance(request, Quit):
                    break
                try:
                    result = await request.run(self)
                except Exception:
                    self.conn.send(("error", traceback.format_exc()))
                else:
                    self.conn.send(("ok", result))
        finally:
            ticker.cancel()
            await self.close()

    async def _tick(self) -> None:
        while True:
            base = COUNTERS * self.index
            self.progress[base] = self.acks
            self.progress[base + 1] = self.delivered
            self.progress[base + 2] = self.setups
            await asyncio.sleep(0.1)

    def _connection(self) -> asyncio.Task[RawConnection]:
        """The raw HTTP/2 connection for the next session stream."""
        if self._raw_slots % self.per_channel == 0:
            host, port = self.endpoint.host, self.endpoint.port
            self.connections.append(asyncio.ensure_future(RawConnection.open(host, port)))
        self._raw_slots += 1
        return self.connections[-1]

    def _hang_up(self) -> None:
        """Closes the unary channels once their calls are done, so a client
        holds one socket, its session's (a channel reconnects if used again)."""
        for channel in self.channels:
            channel.close()

    def _channel(self) -> Channel:
        if self._slots % self.per_channel == 0:
            self.channels.append(Channel(self.endpoint.host, self.endpoint.port))
        self._slots += 1
        return self.channels[-1]

    async def _bounded(
        self, jobs: list[Callable[[], Any]], limit: int = SETUP_CONCURRENCY
    ) -> list[Any]:
        gate = asyncio.Semaphore(limit)

        async def one(job: Callable[[], Any]) -> Any:
            async with gate:
                result = await job()
                self.setups += 1
                return result

        return await asyncio.gather(*(one(job) for job in jobs))

    # ---- accounts and rooms ----------------------------------------------

    async def signup(self, request: SignUp) -> dict[int, int]:
        bots, password = request.bots, request.password
        for index, name in bots:
            self.bots[index] = Bot(index, name, self._channel())

        async def signup(bot: Bot) -> None:
            tokens = await rpc.sign_up(bot.channel, bot.name, password)
            bot.token, bot.user_id = tokens.access_token, int(tokens.user.id)

        await self._bounded([partial(signup, self.bots[i]) for i, _ in bots])
        self._hang_up()
        return {i: self.bots[i].user_id for i, _ in bots}

    async def signin(self, request: SignIn) -> int:
        bot = self.bots[request.index] = Bot(request.index, request.name, self._channel())
        tokens = await rpc.sign_in(bot.channel, request.name, request.password)
        bot.token, bot.user_id = tokens.access_token, int(tokens.user.id)
        return bot.user_id

    async def accept(self, request: Accept) -> None:
        await self._bounded(
            [
                partial(rpc.accept_invite, self.bots[i].channel, self.bots[i].token, invite)
                for i, invite in request.invites.items()
            ]
        )
        self._hang_up()

    async def connect(self, request: Connect) -> float:
        started = time.perf_counter()
        chat_id, indexes = request.chat_id, request.indexes
        cursors = {chat_id: 0} if chat_id else {}
        await self._bounded([partial(self._open, self.bots[i], cursors) for i in indexes])
        if request.watch:
            self.chat_id = chat_id
            self.watchers.extend(self.bots[i] for i in indexes)
        return time.perf_counter() - started

    async def _open(self, bot: Bot, cursors: dict[int, int]) -> None:
        m = self.m
        connection = await self._connection()
        bot.ready = asyncio.get_running_loop().create_future()
        bot.stream = connection.request(
            w.CONNECT,
            {"authorization": f"Bearer {bot.token}"},
            partial(self._frame, bot),
            partial(self._ended, bot),
        )
        chats = [m.ChatCursor(chat_id=c, last_seen_id=s) for c, s in cursors.items()]
        await bot.stream.send(m.ClientFrame(resume=m.Resume(cursors=chats)).SerializeToString())
        try:
            await asyncio.wait_for(bot.ready, CONNECT_TIMEOUT)
        except TimeoutError:
            raise BenchError(f"{bot.name}: no Ready within {CONNECT_TIMEOUT:.0f}s") from None

    def _frame(self, bot: Bot, data: bytes) -> None:
        """Each ServerFrame of a bot's session stream, as it arrives."""
        self._handle(bot, self.m.ServerFrame.FromString(data), time.time())

    def _handle(self, bot: Bot, frame: Any, now: float) -> None:
        kind = frame.WhichOneof("kind")
        if kind == "batch":  # several frames in one message, in order
            for inner in frame.batch.frames:
                self._handle(bot, inner, now)
        elif kind == "message":
            message = frame.message
            if message.chat_id != self.chat_id:
                return
            bot.ids.append(message.id)
            bot.times.append(now)
            with contextlib.suppress(ValueError):
                bot.latencies.append(now - float(message.text.partition(" ")[0]))
            self.delivered += 1
        elif kind == "ack":
            future = bot.pending.pop(frame.ack.client_message_id, None)
            if future is not None and not future.done():
                future.set_result((int(frame.ack.message.id), now))
        elif kind == "send_error":
            error = frame.send_error
            future = bot.pending.pop(error.client_message_id, None)
            if future is not None and not future.done():
                future.set_exception(BenchError(f"{error.code}: {error.message}"))
        elif kind == "ready" and bot.ready is not None and not bot.ready.done():
            bot.ready.set_result(None)

    def _ended(self, bot: Bot, error: str | None) -> None:
        bot.error = error or "the server ended the stream"
        failure = ConnectionError(f"{bot.name}: {bot.error}")
        if bot.ready is not None and not bot.ready.done():
            bot.ready.set_exception(failure)
        for future in bot.pending.values():
            if not future.done():
                future.set_exception(failure)
        bot.pending.clear()

    # ---- fan-out ---------------------------------------------------------

    async def fanout(self, request: Fanout) -> Sent:
        chat_id, messages, phase = request.chat_id, request.messages, request.phase
        acked: list[int] = []
        ack_times: list[float] = []
        round_trips: list[float] = []
        failures: list[str] = []
        m = self.m

        async def send_all(bot: Bot) -> None:
            loop = asyncio.get_running_loop()
            for k in range(messages):
                cid = f"p{phase}-{bot.index}-{k}"
                future: asyncio.Future[tuple[int, float]] = loop.create_future()
                bot.pending[cid] = future
                sent = time.time()
                text = f"{sent:.6f} {bot.name}#{k}"
                send = m.SendMessage(chat_id=chat_id, client_message_id=cid, text=text)
                try:
                    assert bot.stream is not None
                    if request.typing:
                        typing = m.ClientFrame(typing=m.Typing(chat_id=chat_id))
                        await bot.stream.send(typing.SerializeToString())
                    await bot.stream.send(m.ClientFrame(send=send).SerializeToString())
                    message_id, at = await asyncio.wait_for(future, ACK_TIMEOUT)
                except Exception as error:
                    bot.pending.pop(cid, None)
                    failures.append(f"{bot.name} message {k}: {type(error).__name__}: {error}")
                    if bot.error:
                        return
                    continue
                acked.append(message_id)
                ack_times.append(at)
                round_trips.append(at - sent)
                self.acks += 1

        await asyncio.sleep(max(0.0, request.start_at - time.time()))
        await asyncio.gather(*(send_all(self.bots[i]) for i in request.senders))
        return Sent(acked, ack_times, round_trips, failures)

    async def drain(self, request: Drain) -> Drained:
        expected, last_id = request.expected, request.last_id

        def done(bot: Bot) -> bool:
            return len(bot.ids) >= expected and (not bot.ids or bot.ids[-1] >= last_id)

        deadline = time.monotonic() + request.timeout
        grace: float | None = None
        while time.monotonic() < deadline:
            waiting = [b for b in self.watchers if not done(b) and b.error is None]
            if not waiting:
                break
            if all(b.ids and b.ids[-1] >= last_id for b in waiting):
                # Each has seen the newest message, yet some are short: what
                # is missing will not come (ids arrive in order); allow a beat.
                grace = grace or time.monotonic() + 0.5
                if time.monotonic() > grace:
                    break
            await asyncio.sleep(0.01)
        return Drained(
            received={b.name: b.ids for b in self.watchers},
            latencies={b.name: b.latencies for b in self.watchers},
            times={b.name: b.times for b in self.watchers},
            errors={b.name: b.error for b in self.watchers if b.error},
        )

    async def reset(self, request: Reset) -> None:
        for bot in self.watchers:
            bot.ids, bot.latencies, bot.times = array("q"), array("d"), array("d")

    async def status(self, request: Status) -> Streams:
        watching = {b.index for b in self.watchers}
        streams = [
            b for b in self.bots.values() if b.stream is not None and b.index not in watching
        ]
        errors = {b.name: b.error for b in streams if b.error}
        return Streams(len(streams) - len(errors), errors)

    # ---- sign-ins --------------------------------------------------------

    async def signins(self, request: SignIns) -> SignedIn:
        names, password = request.names, request.password
        latencies: list[float] = []
        failures: list[str] = []
        channels = [Channel(self.endpoint.host, self.endpoint.port) for _ in names]
        self.channels.extend(channels)

        async def loop(channel: Channel, name: str) -> None:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    await rpc.sign_in(channel, name, password)
                except Exception as error:
                    failures.append(f"{name}: {type(error).__name__}: {error}")
                    await asyncio.sleep(0.1)
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(loop(c, n) for c, n in zip(channels, names, strict=True)))
        return SignedIn(latencies, failures)

    async def user_signins(self, request: UserSignIns) -> SignedIn:
        """Each sign-in on a new connection, as a client starting up would."""
        name, password, local_host = request.name, request.password, request.local_host
        latencies: list[float] = []
        failures: list[str] = []
        host, port = self.endpoint.host, self.endpoint.port
        next_at = time.monotonic()
        while not self.stop.is_set():
            channel = (
                rpc.SourceChannel(host, port, local_host) if local_host else Channel(host, port)
            )
            started = time.perf_counter()
            try:
                await rpc.sign_in(channel, name, password)
            except Exception as error:
                failures.append(f"{type(error).__name__}: {error}")
            else:
                latencies.append(time.perf_counter() - started)
            finally:
                channel.close()
            next_at += request.interval
            # The shared stop is a multiprocessing Event: wait on it in a thread.
            await asyncio.to_thread(self.stop.wait, max(0.0, next_at - time.monotonic()))
        return SignedIn(latencies, failures)

    # ---- a paced sender ----------------------------------------------------

    async def pace(self, request: Pace) -> Paced:
        """On schedule whatever the acknowledgements do (a server that stalls
        delays every message it holds, and each one's latency shows it)."""
        bot = self.bots[request.sender]
        chat_id, interval, phase = request.chat_id, request.interval, request.phase
        acked: list[int] = []
        round_trips: list[float] = []
        failures: list[str] = []
        loop = asyncio.get_running_loop()
        m = self.m

        async def one(k: int) -> None:
            cid = f"a{phase}-{bot.index}-{k}"
            future: asyncio.Future[tuple[int, float]] = loop.create_future()
            bot.pending[cid] = future
            sent = time.time()
            send = m.SendMessage(chat_id=chat_id, client_message_id=cid, text=f"{sent:.6f} #{k}")
            try:
                assert bot.stream is not None
                await bot.stream.send(m.ClientFrame(send=send).SerializeToString())
                message_id, at = await asyncio.wait_for(future, ACK_TIMEOUT)
            except Exception as error:
                bot.pending.pop(cid, None)
                failures.append(f"{bot.name} message {k}: {type(error).__name__}: {error}")
                return
            acked.append(message_id)
            round_trips.append(at - sent)
            self.acks += 1

        tasks: list[asyncio.Task[None]] = []
        next_at = time.monotonic()
        while not self.stop.is_set() and bot.error is None:
            tasks.append(asyncio.create_task(one(len(tasks))))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)
        return Paced(len(tasks), acked, round_trips, failures, bot.error)

    # ---- history ---------------------------------------------------------

    async def history(self, request: History) -> Pages:
        bot = self.bots[request.index]
        chat_id, newest, page = request.chat_id, request.newest, request.page
        requests = request.requests
        if not newest:
            latest = await rpc.get_messages(bot.channel, bot.token, chat_id, 0, 1)
            newest = int(latest.messages[0].id) if latest.messages else 0
        if newest < page:
            raise BenchError(f"chat {chat_id} holds {newest} messages: fewer than a page")
        rng = random.Random(request.seed)
        latencies: list[float] = []
        times: list[float] = []
        problems: list[str] = []
        todo = request.warmup + requests
        done = 0

        async def reader() -> None:
            nonlocal todo, done
            while todo > 0:
                measured = todo <= requests
                todo -= 1
                before = rng.randint(page + 1, newest + 1)
                started = time.perf_counter()
                found = await rpc.get_messages(bot.channel, bot.token, chat_id, before, page)
                elapsed = time.perf_counter() - started
                ids = [int(message.id) for message in found.messages]
                wanted = list(range(before - 1, before - 1 - page, -1))
                if ids != wanted and len(problems) < 20:
                    problems.append(f"page before {before}: got ids {ids[:3]}... ({len(ids)})")
                if measured:
                    latencies.append(elapsed)
                    times.append(time.time())
                    done += 1
                    self.acks = done

        await asyncio.gather(*(reader() for _ in range(request.concurrency)))
        return Pages(latencies, times, problems, newest)

    # ---- search ----------------------------------------------------------

    async def searches(self, request: Searches) -> Pages:
        bot = self.bots[request.index]
        latencies: list[float] = []
        times: list[float] = []
        problems: list[str] = []
        todo = request.warmup + request.requests
        hits = 0

        async def searcher() -> None:
            nonlocal todo, hits
            while todo > 0:
                measured = todo <= request.requests
                query = request.queries[todo % len(request.queries)]
                todo -= 1
                started = time.perf_counter()
                found = await rpc.search_messages(bot.channel, bot.token, query, request.limit)
                elapsed = time.perf_counter() - started
                if measured:
                    hits += len(found.hits)
                    latencies.append(elapsed)
                    times.append(time.time())
                    self.acks = len(latencies)

        await asyncio.gather(*(searcher() for _ in range(request.concurrency)))
        return Pages(latencies, times, problems, hits)

    async def close(self) -> None:
        for bot in self.bots.values():
            if bot.stream is not None:
                bot.stream.cancel()
        for channel in self.channels:
            channel.close()
        self.channels.clear()
        for task in self.connections:
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()
            else:
                task.cancel()


def worker_main(
    index: int, conn: Connection, endpoint: Endpoint, per_channel: int, progress: Any, stop: Any
) -> None:
    """A load-generator process's entry point."""
    raise_open_files(8192)
    worker = LoadWorker(index, conn, endpoint, per_channel, progress, stop)
    try:
        import uvloop

        uvloop.run(worker.serve())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(worker.serve())


class Asked(Generic[R]):
    """A request sent to load generator `worker` whose reply is an R, not yet taken."""

    __slots__ = ("worker",)

    def __init__(self, worker: int) -> None:
        self.worker = worker


class Pool:
    """The coordinator's handle on the load-generator processes."""

    def __init__(self, procs: int, endpoint: Endpoint, per_channel: int) -> None:
        ctx = mp.get_context("spawn")
        self.size = procs
        self.progress: Any = ctx.Array("q", COUNTERS * procs, lock=False)
        self.stop: Any = ctx.Event()
        self.conns: list[Connection] = []
        self.processes: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=worker_main,
                args=(i, child, endpoint, per_channel, self.progress, self.stop),
                name=f"crab-bench-loadgen-{i}",
                daemon=True,
            )
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)

    def send(self, i: int, request: Request[R]) -> Asked[R]:
        """Sends `request` to load generator i; `recv` takes its reply."""
        self.conns[i].send(request)
        return Asked(i)

    def recv(self, asked: Asked[R], tick: Callable[[], None] | None = None) -> R:
        i = asked.worker
        conn = self.conns[i]
        while not conn.poll(0.1):
            if tick is not None:
                tick()
            if not self.processes[i].is_alive():
                raise BenchError(f"load generator {i} died (exit {self.processes[i].exitcode})")
        try:
            status, result = conn.recv()
        except EOFError:
            raise BenchError(f"load generator {i} went away") from None
        if status != "ok":
            raise BenchError(f"load generator {i} failed:\n{result}")
        reply: R = result  # the worker ran the request: its reply is an R
        return reply

    def call(self, i: int, request: Request[R]) -> R:
        return self.recv(self.send(i, request))

    def call_all(
        self, calls: Mapping[int, Request[R]], tick: Callable[[], None] | None = None
    ) -> dict[int, R]:
        asked = {i: self.send(i, request) for i, request in calls.items()}
        return {i: self.recv(one, tick) for i, one in asked.items()}

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the load generators have used so far."""
        total = 0.0
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(process.pid).cpu_times()
                total += times.user + times.system
        return total

    def counts(self) -> tuple[int, int, int]:
        """(acknowledged sends, deliveries, setup steps) so far, over all processes."""
        values = list(self.progress)
        return (
            sum(values[0::COUNTERS]),
            sum(values[1::COUNTERS]),
            sum(values[2::COUNTERS]),
        )

    def close(self) -> None:
        for conn, process in zip(self.conns, self.processes, strict=True):
            if process.is_alive():
                with contextlib.suppress(OSError):
                    conn.send(Quit())
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(2)
