"""The coordinator's side of a run: the server (own or target), the
load-generator pool, and the phases every room workload shares: set up a
room whose members all listen, then fan messages out and check them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grpclib.client import Channel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from crab_bench import rpc
from crab_bench.check import CheckResult, check_delivery
from crab_bench.loadgen import Pool
from crab_bench.protocol import (
    Accept,
    Connect,
    Drain,
    Drained,
    Fanout,
    Request,
    Reset,
    Sent,
    SignUp,
)
from crab_bench.report import Latency, mib
from crab_bench.server import BenchError, Endpoint, OwnServer, ServerProbe, raise_open_files

T = TypeVar("T")


@dataclass
class Options:
    """What every workload takes from the command line."""

    target: str | None = None
    server_pid: int | None = None
    procs: int = 2
    per_channel: int = 1
    drain_timeout: float = 10.0
    password_hashing: str = "cheap"
    server_open_files: int | None = None  # the own server's soft limit; None: the bench's


@dataclass
class Bench:
    endpoint: Endpoint
    pool: Pool
    probe: ServerProbe | None
    console: Console
    workers: list[int]  # load generators that hold room members
    drain_timeout: float
    own: OwnServer | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _next: int = 0

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {text}")

    def new_bots(self, count: int, role: str) -> list[tuple[int, str]]:
        """Fresh (bot index, username) pairs; names unique per run."""
        bots = [(self._next + i, f"{role}{self.run_id}x{self._next + i}") for i in range(count)]
        self._next += count
        return bots

    def spread(self, indexes: list[int], workers: list[int] | None = None) -> dict[int, list[int]]:
        """Round robin over the load generators."""
        pool = workers or self.workers
        out: dict[int, list[int]] = {w: [] for w in pool}
        for n, index in enumerate(indexes):
            out[pool[n % len(pool)]].append(index)
        return {w: found for w, found in out.items() if found}

    def call(self, fn: Callable[[Channel], Awaitable[T]]) -> T:
        """Runs `fn(channel)` on a fresh channel in this process (the room owner's calls)."""

        async def go() -> T:
            channel = Channel(self.endpoint.host, self.endpoint.port)
            try:
                return await fn(channel)
            finally:
                channel.close()

        return asyncio.run(go())

    @contextlib.contextmanager
    def track(self, label: str, total: int, counter: int) -> Iterator[Callable[[], None]]:
        """A progress bar over one of the pool's counters (0 acks, 1
        deliveries, 2 setup steps); yields the tick to pass to call_all."""
        base = self.pool.counts()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        ) as progress:
            task = progress.add_task(label, total=total)

            def tick() -> None:
                now = self.pool.counts()
                extra = "" if counter != 1 else f" ({now[0] - base[0]} acked)"
                progress.update(
                    task, completed=now[counter] - base[counter], description=label + extra
                )

            yield tick

    def setup(self, label: str, calls: Mapping[int, Request[T]], total: int) -> dict[int, T]:
        """call_all with a progress bar over setup steps."""
        with self.track(label, total, 2) as tick:
            return self.pool.call_all(calls, tick)

    def keep_server_log(self) -> Path | None:
        """Copies the own server's log out of its temporary directory (which
        goes when the run ends); returns where it is now."""
        if self.own is None or self.endpoint.pid is None:
            return None
        kept = Path(tempfile.gettempdir()) / f"crab-bench-serve-{self.endpoint.pid}.log"
        kept.write_text(self.own.log())
        return kept

    def server_sample(self) -> tuple[float | None, int | None]:
        """(CPU seconds so far, RSS bytes) of the server, when it can be seen."""
        if self.probe is None:
            return None, None
        sample = self.probe.sample()
        return sample.cpu, sample.rss


@contextlib.contextmanager
def open_bench(
    options: Options,
    console: Console,
    fds: int = 4096,
    extra_workers: int = 0,
    prepare: Callable[[Path], Any] | None = None,
) -> Iterator[tuple[Bench, Any]]:
    """The server and the load generators, for the length of a run. `prepare`
    runs on the own server's data directory before the server starts (with
    --target it is not called) and its result is yielded with the bench."""
    notes: list[str] = []
    raised = raise_open_files(fds)
    if raised:
        notes.append(raised)
    own: OwnServer | None = None
    probe: ServerProbe | None = None
    pool: Pool | None = None
    prepared: Any = None
    started = time.monotonic()
    try:
        if options.target:
            host, _, port = options.target.rpartition(":")
            if not host or not port.isdigit():
                raise BenchError("--target must be HOST:PORT")
            endpoint = Endpoint(host, int(port), options.server_pid)
            if options.server_pid is None:
                notes.append("--target without --server-pid: no server RSS or CPU figures")
        else:
            own = OwnServer(
                options.password_hashing,
                open_files=options.server_open_files,
                default_limits=options.server_open_files is not None,  # abuse
            )
            if prepare is not None:
                prepared = prepare(own.data_dir)
            endpoint = own.start()
            notes.append(
                f"own server: crab serve pid {endpoint.pid}, memory broker, SQLite in "
                f"{own.data_dir}, password hashing {options.password_hashing}"
                + (
                    f", started with an open-file soft limit of {options.server_open_files}"
                    if options.server_open_files is not None
                    else ""
                )
            )
        if endpoint.pid is not None:
            probe = ServerProbe(endpoint.pid)
        procs = max(1, options.procs)
        pool = Pool(procs + extra_workers, endpoint, options.per_channel)
        bench = Bench(
            endpoint,
            pool,
            probe,
            console,
            list(range(procs)),
            options.drain_timeout,
            own=own,
            notes=notes,
            started=started,
        )
        bench.say(
            f"server {endpoint.host}:{endpoint.port}; {procs} load generator process(es)"
            + (f" + {extra_workers}" if extra_workers else "")
            + f", {options.per_channel} stream(s) per channel"
        )
        yield bench, prepared
    except BaseException:
        if own is not None:
            tail = "\n".join(own.log().splitlines()[-40:])
            console.print("the server's log, last lines:", style="dim")
            console.print(tail, markup=False, highlight=False)
        raise
    finally:
        if pool is not None:
            pool.close()
        if probe is not None:
            probe.close()
        if own is not None:
            own.stop()


# ---- rooms ---------------------------------------------------------------


@dataclass
class Room:
    chat_id: int
    members: list[int]  # bot indexes
    placement: dict[int, list[int]]  # load generator -> its member bots

    def worker_of(self, index: int) -> int:
        return next(w for w, found in self.placement.items() if index in found)


def setup_room(bench: Bench, members: int, label: str) -> Room:
    """A room of `members` fresh accounts, each with its session stream open.
    The owner who made it leaves, so exactly the members listen."""
    password = rpc.PASSWORD
    owner = f"own{bench.run_id}{label}"[:32]

    async def make(channel: Channel) -> tuple[str, int]:
        tokens = await rpc.sign_up(channel, owner, password)
        token = tokens.access_token
        return token, await rpc.create_room(channel, token, f"bench {label} {bench.run_id}")

    bench.say(f"{label}: creating a room of {members} members")
    token, chat_id = bench.call(make)
    bots = bench.new_bots(members, "m")
    names = dict(bots)
    placement = bench.spread([i for i, _ in bots])
    user_ids: dict[int, int] = {}
    signups = {w: SignUp([(i, names[i]) for i in idx], password) for w, idx in placement.items()}
    for found in bench.setup("signing up members", signups, members).values():
        user_ids.update(found)

    async def invite(channel: Channel) -> dict[int, int]:
        gate = asyncio.Semaphore(16)

        async def one(index: int) -> tuple[int, int]:
            async with gate:
                return index, await rpc.invite_to_room(channel, token, chat_id, user_ids[index])

        return dict(await asyncio.gather(*(one(i) for i in user_ids)))

    invites = bench.call(invite)
    accepts = {w: Accept({i: invites[i] for i in idx}) for w, idx in placement.items()}
    bench.setup("accepting invites", accepts, members)
    bench.call(lambda channel: rpc.leave_chat(channel, token, chat_id))
    connects = {w: Connect(idx, chat_id, watch=True) for w, idx in placement.items()}
    bench.setup("opening session streams", connects, members)
    return Room(chat_id, [i for i, _ in bots], placement)


# ---- fan-out -------------------------------------------------------------


@dataclass
class Phase:
    """One fan-out: what was sent, what arrived, and what it cost the server."""

    label: str
    members: int
    senders: int
    messages: int
    check: CheckResult
    latencies: list[float]  # seconds, every delivery
    delivery_times: list[float]
    ack_times: list[float]
    round_trips: list[float]
    start: float
    end: float
    cpu_seconds: float | None
    peak_rss: int | None
    loadgen_cpu_seconds: float

    @property
    def latency(self) -> Latency:
        return Latency.of(self.latencies)

    @property
    def acks_per_second(self) -> float:
        if not self.ack_times:
            return 0.0
        return len(self.ack_times) / max(max(self.ack_times) - self.start, 1e-9)

    @property
    def deliveries_per_second(self) -> float:
        if not self.delivery_times:
            return 0.0
        return len(self.delivery_times) / max(max(self.delivery_times) - self.start, 1e-9)

    def to_json(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "senders": self.senders,
            "messages_per_sender": self.messages,
            "acked_sends": len(self.ack_times),
            "deliveries": len(self.delivery_times),
            "acked_sends_per_s": round(self.acks_per_second, 1),
            "deliveries_per_s": round(self.deliveries_per_second, 1),
            "delivery_latency_ms": self.latency.to_json(),
            "send_to_ack_ms": Latency.of(self.round_trips).to_json(),
            "seconds": round(self.end - self.start, 3),
            "server_cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
            "server_peak_rss_mib": mib(self.peak_rss),
            "loadgen_cpu_seconds": round(self.loadgen_cpu_seconds, 2),
            "ok": self.check.ok,
        }


def fanout(
    bench: Bench,
    room: Room,
    senders: int,
    messages: int,
    label: str,
    phase: int,
    typing: bool = False,
) -> Phase:
    """`senders` members send `messages` messages each, each after the
    previous one's acknowledgement; every member's deliveries are checked.
    `typing`: each message after a Typing frame."""
    senders = min(senders, len(room.members))
    sending = room.members[:senders]
    pool = bench.pool
    pool.call_all({w: Reset() for w in room.placement})
    total = senders * messages * len(room.members)
    cpu0, _ = bench.server_sample()
    loadgen0 = pool.cpu_seconds()
    start = time.time() + 0.2
    bench.say(
        f"{label}: {senders} sender(s) x {messages} message(s) to {len(room.members)} members"
    )
    with bench.track(f"{label}: deliveries", total, 1) as tick:
        sent: dict[int, Sent] = pool.call_all(
            {
                w: Fanout(
                    [i for i in idx if i in sending], room.chat_id, messages, start, phase, typing
                )
                for w, idx in room.placement.items()
            },
            tick,
        )
        acked = [i for r in sent.values() for i in r.acked]
        drain = Drain(len(acked), max(acked, default=0), bench.drain_timeout)
        drained: dict[int, Drained] = pool.call_all({w: drain for w in room.placement}, tick)
    end = time.time()
    cpu1, rss1 = bench.server_sample()
    loadgen1 = pool.cpu_seconds()
    received: dict[str, Sequence[int]] = {}
    errors: dict[str, str] = {}
    latencies: list[float] = []
    times: list[float] = []
    for found in drained.values():
        received.update(found.received)
        errors.update(found.errors)
        for values in found.latencies.values():
            latencies.extend(values)
        for values in found.times.values():
            times.extend(values)
    failures = [f for r in sent.values() for f in r.failures]
    check = check_delivery(acked, received, errors, failures)
    return Phase(
        label=label,
        members=len(room.members),
        senders=senders,
        messages=messages,
        check=check,
        latencies=latencies,
        delivery_times=times,
        ack_times=[t for r in sent.values() for t in r.ack_times],
        round_trips=[t for r in sent.values() for t in r.round_trips],
        start=start,
        end=end,
        cpu_seconds=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        # The sample taken at the end counts too: a phase can be shorter
        # than the probe's 100 ms between samples.
        peak_rss=max(bench.probe.peak_rss(start, end), rss1 or 0) if bench.probe else None,
        loadgen_cpu_seconds=loadgen1 - loadgen0,
    )
