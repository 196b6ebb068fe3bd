"""What the coordinator and the load-generator processes say to each other.

One frozen dataclass per request, sent down a pipe (pickled); its type
parameter names its reply, and `run` hands it to the matching method of the
load generator. So mypy checks a call end to end: `Pool.call(i, Drain(...))`
returns a `Drained`, `Drain.run` must return one, and `LoadWorker` must have
every method `LoadGenerator` lists (loadgen.py passes itself as one)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

R = TypeVar("R", covariant=True)


class LoadGenerator(Protocol):
    """What a load-generator process can be asked (loadgen.LoadWorker)."""

    async def signup(self, request: SignUp) -> dict[int, int]: ...
    async def signin(self, request: SignIn) -> int: ...
    async def accept(self, request: Accept) -> None: ...
    async def connect(self, request: Connect) -> float: ...
    async def fanout(self, request: Fanout) -> Sent: ...
    async def drain(self, request: Drain) -> Drained: ...
    async def reset(self, request: Reset) -> None: ...
    async def status(self, request: Status) -> Streams: ...
    async def signins(self, request: SignIns) -> SignedIn: ...
    async def user_signins(self, request: UserSignIns) -> SignedIn: ...
    async def pace(self, request: Pace) -> Paced: ...
    async def history(self, request: History) -> Pages: ...
    async def searches(self, request: Searches) -> Pages: ...


class Request(Generic[R]):
    """A request whose reply is an R."""

    async def run(self, on: LoadGenerator) -> R:
        raise NotImplementedError


@dataclass(frozen=True)
class Quit(Request[None]):
    """The process closes its connections and exits (no reply)."""


# ---- accounts, rooms, streams -----------------------------------------------


@dataclass(frozen=True)
class SignUp(Request[dict[int, int]]):
    """New accounts (bot index, username); replies bot index -> user id."""

    bots: list[tuple[int, str]]
    password: str

    async def run(self, on: LoadGenerator) -> dict[int, int]:
        return await on.signup(self)


@dataclass(frozen=True)
class SignIn(Request[int]):
    """An existing account (the history reader) as bot `index`; replies its user id."""

    index: int
    name: str
    password: str

    async def run(self, on: LoadGenerator) -> int:
        return await on.signin(self)


@dataclass(frozen=True)
class Accept(Request[None]):
    """bot index -> invite id to accept."""

    invites: dict[int, int]

    async def run(self, on: LoadGenerator) -> None:
        await on.accept(self)


@dataclass(frozen=True)
class Connect(Request[float]):
    """Opens the bots' session streams (resuming `chat_id` from its start
    when not 0) and keeps reading them; `watch` records the room's
    deliveries. Replies the seconds it took."""

    indexes: list[int]
    chat_id: int
    watch: bool

    async def run(self, on: LoadGenerator) -> float:
        return await on.connect(self)


@dataclass(frozen=True)
class Reset(Request[None]):
    """Forgets what the watchers received (between phases)."""

    async def run(self, on: LoadGenerator) -> None:
        await on.reset(self)


@dataclass(frozen=True)
class Streams:
    open: int  # session streams still open, of the bots that watch no room
    errors: dict[str, str]  # bot name -> why its stream ended


@dataclass(frozen=True)
class Status(Request[Streams]):
    """The idle bots' session streams."""

    async def run(self, on: LoadGenerator) -> Streams:
        return await on.status(self)


# ---- fan-out --------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    acked: list[int]  # message ids, in acknowledgement order
    ack_times: list[float]  # time.time() of each acknowledgement
    round_trips: list[float]  # seconds from send to acknowledgement
    failures: list[str]


@dataclass(frozen=True)
class Fanout(Request[Sent]):
    """Each sender sends `messages` messages from `start_at` (time.time()),
    one at a time, each after the previous one's acknowledgement."""

    senders: list[int]
    chat_id: int
    messages: int
    start_at: float
    phase: int
    # A Typing frame before each message, as a client sends while one types
    # (the server passes at most one per 2 s on, as typing notices).
    typing: bool = False

    async def run(self, on: LoadGenerator) -> Sent:
        return await on.fanout(self)


@dataclass(frozen=True)
class Drained:
    """Per watcher (by name): what it received, when, and how its stream ended."""

    received: dict[str, array[int]]  # message ids in arrival order
    latencies: dict[str, array[float]]  # seconds from send to receipt
    times: dict[str, array[float]]  # time.time() of each receipt
    errors: dict[str, str]


@dataclass(frozen=True)
class Drain(Request[Drained]):
    """Waits until every watcher has all `expected` messages up to `last_id`
    (or `timeout` seconds pass), then hands over what each received."""

    expected: int
    last_id: int
    timeout: float

    async def run(self, on: LoadGenerator) -> Drained:
        return await on.drain(self)


@dataclass(frozen=True)
class Paced:
    sent: int
    acked: list[int]
    round_trips: list[float]
    failures: list[str]
    stream_error: str | None


@dataclass(frozen=True)
class Pace(Request[Paced]):
    """Bot `sender` sends a message every `interval` seconds until the pool's
    stop is set, then waits for the acknowledgements still due."""

    sender: int
    chat_id: int
    interval: float
    phase: int

    async def run(self, on: LoadGenerator) -> Paced:
        return await on.pace(self)


# ---- sign-ins -------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    latencies: list[float]  # seconds per successful sign-in
    failures: list[str]


@dataclass(frozen=True)
class SignIns(Request[SignedIn]):
    """Each account signs in again and again until the pool's stop is set."""

    names: list[str]
    password: str

    async def run(self, on: LoadGenerator) -> SignedIn:
        return await on.signins(self)


@dataclass(frozen=True)
class UserSignIns(Request[SignedIn]):
    """A real user signing in every `interval` seconds until the pool's stop
    is set, each time on a new connection, from `local_host` when given."""

    name: str
    password: str
    interval: float
    local_host: str | None

    async def run(self, on: LoadGenerator) -> SignedIn:
        return await on.user_signins(self)


# ---- history --------------------------------------------------------------------


@dataclass(frozen=True)
class Pages:
    latencies: list[float]  # seconds per measured page
    times: list[float]  # time.time() when each arrived
    problems: list[str]
    newest: int  # the chat's newest message id


@dataclass(frozen=True)
class History(Request[Pages]):
    """GetMessages pages of `page` messages at random positions (after
    `warmup` unmeasured ones), `concurrency` at a time; checks each page's
    ids. `newest` 0: ask the server for the chat's newest id first."""

    index: int
    chat_id: int
    newest: int
    requests: int
    concurrency: int
    page: int
    warmup: int
    seed: int

    async def run(self, on: LoadGenerator) -> Pages:
        return await on.history(self)


@dataclass(frozen=True)
class Searches(Request[Pages]):
    """SearchMessages calls for `queries` taken in turn (after `warmup`
    unmeasured ones), `concurrency` at a time. The reply's `newest` is the
    number of hits the measured calls returned."""

    index: int
    queries: list[str]
    requests: int
    concurrency: int
    limit: int
    warmup: int

    async def run(self, on: LoadGenerator) -> Pages:
        return await on.searches(self)
