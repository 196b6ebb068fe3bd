"""Load-generator processes and the pool that drives them.

Each process runs its own event loop (uvloop) with a share of the clients
("bots"), spread over several grpclib channels (at most `per_channel`
streams each: a grpclib server takes ~100 per HTTP/2 connection). The
coordinator sends a command down a pipe and gets exactly one answer per
command; progress counters go through shared memory so the coordinator can
draw a progress bar without asking.
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
from typing import Any

import psutil
from grpclib.client import Channel

from crab.bench import rpc
from crab.bench import wire as w
from crab.bench.h2raw import RawConnection, RawStream
from crab.bench.server import BenchError, Endpoint, raise_open_files

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
                command, args = await asyncio.to_thread(self.conn.recv)
                if command == "quit":
                    break
                try:
                    result = await getattr(self, f"do_{command}")(**args)
                except Exception:
                    self.conn.send(("error", traceback.format_exc()))
                else:
                    self.conn.send(("ok", result))
        finally:
            ticker.cancel()
            await self.do_close()

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

    async def do_signup(self, bots: list[tuple[int, str]], password: str) -> dict[int, int]:
        """New accounts; returns bot index -> user id."""
        for index, name in bots:
            self.bots[index] = Bot(index, name, self._channel())

        async def signup(bot: Bot) -> None:
            tokens = await rpc.sign_up(bot.channel, bot.name, password)
            bot.token, bot.user_id = tokens.access_token, int(tokens.user.id)

        await self._bounded([partial(signup, self.bots[i]) for i, _ in bots])
        self._hang_up()
        return {i: self.bots[i].user_id for i, _ in bots}

    async def do_signin(self, index: int, name: str, password: str) -> int:
        """An existing account (the history reader)."""
        bot = self.bots[index] = Bot(index, name, self._channel())
        tokens = await rpc.sign_in(bot.channel, name, password)
        bot.token, bot.user_id = tokens.access_token, int(tokens.user.id)
        return bot.user_id

    async def do_accept(self, invites: dict[int, int]) -> None:
        """bot index -> invite id to accept."""
        await self._bounded(
            [
                partial(rpc.accept_invite, self.bots[i].channel, self.bots[i].token, invite)
                for i, invite in invites.items()
            ]
        )
        self._hang_up()

    async def do_connect(self, indexes: list[int], chat_id: int, watch: bool) -> float:
        """Opens the bots' session streams (resuming the room from its start)
        and keeps reading them; returns the seconds it took."""
        started = time.perf_counter()
        cursors = {chat_id: 0} if chat_id else {}
        await self._bounded([partial(self._open, self.bots[i], cursors) for i in indexes])
        if watch:
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

    async def do_fanout(
        self, senders: list[int], chat_id: int, messages: int, start_at: float, phase: int
    ) -> dict[str, Any]:
        """Each sender sends `messages` messages, one at a time, each after
        the previous one's acknowledgement."""
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

        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(send_all(self.bots[i]) for i in senders))
        return {
            "acked": acked,
            "ack_times": ack_times,
            "round_trips": round_trips,
            "failures": failures,
        }

    async def do_drain(self, expected: int, last_id: int, timeout: float) -> dict[str, Any]:
        """Waits until every watcher has all `expected` messages up to
        `last_id` (or gives up), then hands over what each received."""

        def done(bot: Bot) -> bool:
            return len(bot.ids) >= expected and (not bot.ids or bot.ids[-1] >= last_id)

        deadline = time.monotonic() + timeout
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
        return {
            "received": {b.name: b.ids for b in self.watchers},
            "latencies": {b.name: b.latencies for b in self.watchers},
            "times": {b.name: b.times for b in self.watchers},
            "errors": {b.name: b.error for b in self.watchers if b.error},
        }

    async def do_reset(self) -> None:
        """Forgets what the watchers received (between phases)."""
        for bot in self.watchers:
            bot.ids, bot.latencies, bot.times = array("q"), array("d"), array("d")

    async def do_status(self) -> dict[str, Any]:
        """Open session streams of the bots that watch no room (the idle
        ones), and the errors of those that ended."""
        watching = {b.index for b in self.watchers}
        streams = [
            b for b in self.bots.values() if b.stream is not None and b.index not in watching
        ]
        errors = {b.name: b.error for b in streams if b.error}
        return {"open": len(streams) - len(errors), "errors": errors}

    # ---- sign-ins --------------------------------------------------------

    async def do_signins(self, names: list[str], password: str) -> dict[str, Any]:
        """Each account signs in again and again until the coordinator says stop."""
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
        return {"latencies": latencies, "failures": failures}

    async def do_user_signins(
        self, name: str, password: str, interval: float, local_host: str | None
    ) -> dict[str, Any]:
        """A real user signing in every `interval` seconds until the
        coordinator says stop, each time on a new connection (as a client
        starting up would), from `local_host` when given."""
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
            next_at += interval
            # The shared stop is a multiprocessing Event: wait on it in a thread.
            await asyncio.to_thread(self.stop.wait, max(0.0, next_at - time.monotonic()))
        return {"latencies": latencies, "failures": failures}

    # ---- a paced sender ----------------------------------------------------

    async def do_pace(
        self, sender: int, chat_id: int, interval: float, phase: int
    ) -> dict[str, Any]:
        """The bot sends a message every `interval` seconds until the
        coordinator says stop, on schedule whatever the acknowledgements do
        (a server that stalls delays every message it holds, and each one's
        latency shows it); then waits for the acknowledgements still due."""
        bot = self.bots[sender]
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
        return {
            "sent": len(tasks),
            "acked": acked,
            "round_trips": round_trips,
            "failures": failures,
            "stream_error": bot.error,
        }

    # ---- history ---------------------------------------------------------

    async def do_history(
        self,
        index: int,
        chat_id: int,
        newest: int,
        requests: int,
        concurrency: int,
        page: int,
        warmup: int,
        seed: int,
    ) -> dict[str, Any]:
        """GetMessages pages at random positions; checks each page's ids.
        `newest` 0: ask the server for the chat's newest id first."""
        bot = self.bots[index]
        if not newest:
            latest = await rpc.get_messages(bot.channel, bot.token, chat_id, 0, 1)
            newest = int(latest.messages[0].id) if latest.messages else 0
        if newest < page:
            raise BenchError(f"chat {chat_id} holds {newest} messages: fewer than a page")
        rng = random.Random(seed)
        latencies: list[float] = []
        times: list[float] = []
        problems: list[str] = []
        todo = warmup + requests
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

        await asyncio.gather(*(reader() for _ in range(concurrency)))
        return {"latencies": latencies, "times": times, "problems": problems, "newest": newest}

    async def do_close(self) -> None:
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

    def send(self, i: int, command: str, **args: Any) -> None:
        self.conns[i].send((command, args))

    def recv(self, i: int, tick: Callable[[], None] | None = None) -> Any:
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
        return result

    def call(self, i: int, command: str, **args: Any) -> Any:
        self.send(i, command, **args)
        return self.recv(i)

    def call_all(
        self,
        calls: Mapping[int, tuple[str, dict[str, Any]]],
        tick: Callable[[], None] | None = None,
    ) -> dict[int, Any]:
        for i, (command, args) in calls.items():
            self.send(i, command, **args)
        return {i: self.recv(i, tick) for i in calls}

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
                    conn.send(("quit", {}))
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(2)
