"""Settings for every process role. Defaults suit one laptop; the CLI
fills them from options and CRAB_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import platformdirs


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("crab", appauthor=False))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'crab.db'}"


def limit(default: Any, help: str) -> Any:
    """A limit that `crab serve` takes as --NAME-WITH-DASHES and CRAB_NAME
    (cli.py makes the options from these fields; README lists them)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Rate:
    """A token bucket: `count` at once, refilled at `count` per `seconds`.
    Written as "20/min" (also /s, /h, /day) in options."""

    count: int
    seconds: float

    UNITS: ClassVar[dict[str, float]] = {"s": 1.0, "min": 60.0, "h": 3600.0, "day": 86400.0}

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        count, _, unit = text.strip().partition("/")
        seconds = cls.UNITS.get(unit.strip())
        if not count.strip().isdigit() or int(count) < 1 or seconds is None:
            raise ValueError(f"{text!r} is not a rate such as 20/min (units: s, min, h, day)")
        return cls(int(count), seconds)

    def __str__(self) -> str:
        unit = next((u for u, s in self.UNITS.items() if s == self.seconds), None)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.seconds:g}s"


@dataclass(frozen=True)
class Limits:
    max_message_chars: int = limit(4000, "Characters in one message.")
    # Token bucket per user: `send_burst` sends at once, refilled at `send_rate`/s.
    send_rate: float = limit(20.0, "Messages per second per user, sustained.")
    send_burst: int = limit(50, "Messages a user may send at once before the rate applies.")
    # The edge: what one connection, one address or one request may cost.
    max_request_bytes: int = limit(
        64 * 1024, "Bytes in one request or stream frame (checked before it is read)."
    )
    max_connections: int = limit(
        10_000, "Open connections in all (lowered to fit the open-file limit)."
    )
    max_connections_per_address: int = limit(500, "Open connections from one IP address.")
    handshake_timeout: float = limit(
        10.0,
        "Seconds for a new connection's TLS handshake and first request, and for"
        " a request to arrive whole once begun.",
    )
    unauthenticated_timeout: float = limit(
        60.0, "Seconds a connection may stay open without a signed-in call."
    )
    idle_timeout: float = limit(600.0, "Seconds a connection may stay open with no call at all.")
    max_streams_per_connection: int = limit(100, "Calls in progress on one connection.")
    control_frame_rate: float = limit(
        20.0, "HTTP/2 PING, RST_STREAM, SETTINGS and PRIORITY frames per second per connection."
    )
    control_frame_burst: int = limit(
        500, "Such frames a connection may send at once before the rate applies."
    )
    # Frames waiting for one slow client before its stream is ended.
    stream_buffer: int = 1024
    # Resume: cursors in one (or the user's chat count, if more); frames per
    # open stream, `resume_burst` at once then `resume_rate`/s.
    resume_cursors_max: int = limit(
        1000,
        "Cursors in one Resume (or the user's number of chats, if more); more: INVALID_ARGUMENT.",
    )
    resume_rate: float = limit(
        1.0, "Resume frames per second on one open session stream, sustained."
    )
    resume_burst: int = limit(
        5, "Resume frames at once on one stream; beyond the rate: RESOURCE_EXHAUSTED."
    )
    # Typing and presence (docs/conversation.md): ephemeral, never stored.
    typing_interval: float = limit(
        2.0, "Seconds between two typing notices of one session in one chat; more are dropped."
    )
    presence_heartbeat: float = limit(
        10.0, "Seconds between a server's presence beats (its online users) on the broker."
    )
    presence_expiry: float = limit(
        30.0, "Seconds without a beat after which a server's users count as offline."
    )
    session_check_interval: float = limit(
        20.0,
        "Seconds between checks that end open streams of sessions signed out by "
        "`crab user` and of rooms deleted by `crab room delete` (0: never).",
    )
    # Calls (docs/calls.md): signalling only.
    ring_timeout: float = limit(45.0, "Seconds a call rings before the unanswered missed it.")
    call_grace: float = limit(
        10.0, "Seconds a call waits for a participant whose stream dropped before they leave it."
    )
    mesh_max: int = limit(
        4, "People in a call whose media goes peer to peer; more need the SFU (--sfu-url)."
    )
    search_limit_default: int = 20
    search_limit_max: int = 50
    page_limit_default: int = 50
    page_limit_max: int = 200
    # Abuse of accounts (README's options table says why each default).
    signup_per_address: Rate = Rate(30, 3600)
    rooms_per_user: Rate = Rate(20, 60)
    rooms_per_address: Rate = Rate(60, 60)
    invites_per_user: Rate = Rate(60, 60)
    invites_per_address: Rate = Rate(240, 60)
    # Room admin by its owner, and profile changes, per user.
    renames_per_user: Rate = Rate(20, 60)
    topics_per_user: Rate = Rate(20, 60)
    removals_per_user: Rate = Rate(60, 60)
    display_names_per_user: Rate = Rate(10, 60)
    password_changes_per_user: Rate = Rate(10, 3600)
    searches_per_user: Rate = Rate(60, 60)
    # Edits, deletes and reactions by one user (each is an event for every member).
    changes_per_user: Rate = Rate(120, 60)
    # Read positions told by one user (each is a database write; crab chat
    # tells at most one a second per chat).
    mark_reads_per_user: Rate = Rate(600, 60)
    # Call actions (start, answer, decline, hang up) and SDP signals, per user.
    calls_per_user: Rate = Rate(30, 60)
    call_signals_per_user: Rate = Rate(120, 60)
    # Password hashes waiting or running (sign-in, sign-up), in all and per
    # source address: beyond them a sign-in is refused at once.
    hash_queue: int = 16
    hash_queue_per_address: int = 2
    # Failed sign-ins allowed per (account, address) and per address before
    # each further failure doubles the wait (1 s, 2 s, ... 15 min).
    sign_in_failures: int = 5
    sign_in_failures_per_address: int = 20


@dataclass(frozen=True)
class CallSettings:
    """Where a call's media may go: STUN and TURN servers handed to clients
    (TURN with short-lived credentials from `turn_secret`, coturn's
    shared-secret scheme) and the SFU for calls beyond `Limits.mesh_max`."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl: int = 12 * 3600  # seconds a credential lasts (a call longer than it loses TURN)
    relay_only: bool = False  # clients use relays only (hides their addresses from each other)
    sfu_url: str = ""  # Janus's HTTP API, as clients reach it; "" : no SFU
    sfu_secret: str = ""  # Janus's token_auth_secret: each member gets a signed token


def check_url(url: str, what: str) -> None:
    """ValueError unless https, or http on this machine (tests, a provider
    beside the server): tokens and keys must not cross a network in clear."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ValueError(f"{what} must be an https:// URL (http only on localhost): {url!r}")


@dataclass(frozen=True)
class OidcSettings:
    """The team's OpenID Connect provider (docs/single-sign-on.md): crab
    accepts its ID tokens, checked against its published keys."""

    issuer: str = ""  # "": no single sign-on
    client_id: str = ""
    audience: str = ""  # the ID token's aud; "": client_id
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    name: str = ""  # for "Sign in with <name>"; "": the issuer's host
    username_claim: str = "preferred_username"  # then the email's local part, then sub
    client_secret: str = ""  # only providers (Google) whose device clients have one
    keys_refetch_gap: float = 5.0  # seconds between two fetches of its keys on unknown key ids

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None: SQLite in data_dir
    broker_url: str = "memory://"
    host: str = "127.0.0.1"
    port: int = 50051
    signup: bool = True
    run_worker: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    jwt_secret: str | None = None  # None: created in data_dir on first start
    access_token_ttl: int = 900  # seconds
    refresh_token_ttl: int = 30 * 24 * 3600
    # argon2 cost; "cheap" only for tests and benchmarks of other things.
    password_hashing: str = "default"
    worker_concurrency: int = 1
    # Seconds the worker retries a command while the database is unreachable
    # before answering UNAVAILABLE (on RabbitMQ the command goes back instead).
    db_outage_wait: float = 10.0
    limits: Limits = field(default_factory=Limits)
    calls: CallSettings = field(default_factory=CallSettings)
    oidc: OidcSettings = field(default_factory=OidcSettings)
    passwords: bool = True  # False: only the identity provider signs people in

    @property
    def database(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)
