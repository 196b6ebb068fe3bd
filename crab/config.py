"""Settings for every process role. Defaults suit one laptop; the CLI
fills them from options and CRAB_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("crab", appauthor=False))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'crab.db'}"


@dataclass(frozen=True)
class Limits:
    max_message_chars: int = 4000
    # Token bucket per user: `send_burst` sends at once, refilled at `send_rate`/s.
    send_rate: float = 20.0
    send_burst: int = 50
    # Frames waiting for one slow client before its stream is ended.
    stream_buffer: int = 1024
    # Resume: cursors in one (or the user's chat count, if more); frames per
    # open stream, `resume_burst` at once then `resume_rate`/s.
    resume_cursors_max: int = 1000
    resume_rate: float = 1.0
    resume_burst: int = 5
    search_limit_default: int = 20
    search_limit_max: int = 50
    page_limit_default: int = 50
    page_limit_max: int = 200


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
    limits: Limits = field(default_factory=Limits)

    @property
    def database(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)
