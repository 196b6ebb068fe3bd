"""history: one chat holding many messages (1,000,000 by default), read a
page at a time at random positions through GetMessages.

The own server's database is filled before the server starts, straight
through crab's storage layer (Core executemany, large transactions): the
API would take an hour for a million sends. With --target nothing is
filled: name a chat that already holds the messages."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles

from crab.bench import rpc
from crab.bench.report import Latency, Report
from crab.bench.runner import Bench
from crab.bench.server import BenchError
from crab.config import sqlite_url

BATCH = 100_000  # rows per transaction
READER = "history.reader"


async def _accounts(data_dir: Path, password: str) -> tuple[int, int]:
    """Schema, the reader's account and the chat, through crab's storage layer."""
    from sqlalchemy.engine import Connection

    from crab.core.domain.models import ChatKind
    from crab.core.storage import chats, users
    from crab.core.storage.database import Database
    from crab.core.storage.engine import ensure_sqlite_dir

    def reader_and_chat(conn: Connection, password_hash: str, now: datetime) -> tuple[int, int]:
        user = users.insert(conn, READER, "history reader", password_hash, now)
        chat = chats.create(conn, ChatKind.ROOM, "history", user.id, now)
        chats.add_member(conn, chat.id, user.id, now)
        return user.id, chat.id

    url = sqlite_url(data_dir)
    ensure_sqlite_dir(url)
    database = Database(url)
    try:
        await database.migrate()
        # Any argon2 hash verifies under any cost setting: the cheap one saves time here.
        password_hash = PasswordHasher.from_parameters(profiles.CHEAPEST).hash(password)
        return await database.write(reader_and_chat, password_hash, datetime.now(UTC))
    finally:
        await database.close()


def _fill(data_dir: Path, total: int, password: str) -> int:
    """The messages: crab's `messages` table through SQLAlchemy Core, the
    statement compiled once and run as the driver's executemany in large
    transactions (~90,000 rows/s here; one Core insert per row dict is ~45,000)."""
    from crab.core.storage import tables

    user_id, chat_id = asyncio.run(_accounts(data_dir, password))
    engine = sa.create_engine(f"sqlite:///{data_dir / 'crab.db'}")
    try:
        columns = ["chat_id", "seq", "sender_id", "client_message_id", "text", "created_at"]
        insert = sa.insert(tables.messages).compile(dialect=engine.dialect, column_keys=columns)
        assert list(insert.positiontup or []) == columns
        created = tables.messages.c.created_at.type
        stored_time = created.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        now = stored_time(datetime.now(UTC)) if stored_time else datetime.now(UTC)
        for first in range(1, total + 1, BATCH):
            rows = [
                (chat_id, seq, user_id, f"h{seq}", f"history message {seq}", now)
                for seq in range(first, min(first + BATCH, total + 1))
            ]
            with engine.begin() as conn:
                conn.exec_driver_sql(insert.string, rows)
        with engine.begin() as conn:
            chats, members = tables.chats, tables.members
            conn.execute(sa.update(chats).where(chats.c.id == chat_id).values(last_seq=total))
            conn.execute(
                sa.update(members).where(members.c.chat_id == chat_id).values(last_read_seq=total)
            )
        return chat_id
    finally:
        engine.dispose()


def prefill(total: int) -> Any:
    """The `prepare` step: fills the own server's database; returns
    (chat id, username, password, seconds it took)."""

    def prepare(data_dir: Path) -> tuple[int, str, str, float]:
        started = time.perf_counter()
        chat_id = _fill(data_dir, total, rpc.PASSWORD)
        return chat_id, READER, rpc.PASSWORD, time.perf_counter() - started

    return prepare


def run(
    bench: Bench,
    prepared: tuple[int, str, str, float] | None,
    total: int,
    requests: int,
    concurrency: int,
    page: int,
    warmup: int,
    seed: int,
    existing: tuple[int | None, str | None, str | None],
) -> Report:
    if prepared is not None:
        chat_id, username, password, fill_seconds = prepared
        bench.say(f"stored {total:,} messages in {fill_seconds:.1f}s before the server started")
    else:
        chat, user, secret = existing
        if chat is None or user is None or secret is None:
            raise BenchError(
                "with --target, give --chat-id, --username and --password of a chat "
                "that already holds the messages (the bench fills only its own server)"
            )
        chat_id, username, password, fill_seconds = chat, user, secret, 0.0
    report = Report(
        "history",
        {
            "messages": total if prepared else None,
            "requests": requests,
            "concurrency": concurrency,
            "page": page,
            "warmup": warmup,
        },
        notes=bench.notes,
        latency_label="GetMessages latency",
    )
    reader = bench.new_bots(1, "h")[0][0]
    bench.pool.call(0, "signin", index=reader, name=username, password=password)
    cpu0, _ = bench.server_sample()
    start = time.time()
    with bench.track("GetMessages", requests, 0) as tick:
        found = bench.pool.call_all(
            {
                0: (
                    "history",
                    {
                        "index": reader,
                        "chat_id": chat_id,
                        "newest": total if prepared else 0,
                        "requests": requests,
                        "concurrency": concurrency,
                        "page": page,
                        "warmup": warmup,
                        "seed": seed,
                    },
                )
            },
            tick,
        )[0]
    end = time.time()
    cpu1, _ = bench.server_sample()
    latency = Latency.of(found["latencies"])
    seconds = max(found["times"], default=end) - start
    if prepared is not None:
        report.row("messages stored", f"{total:,}")
        report.row("filling them took", f"{fill_seconds:.1f} s ({total / fill_seconds:,.0f}/s)")
    report.row("newest message id", f"{found['newest']:,}")
    report.row("pages read", f"{latency.count:,} x {page} messages")
    report.row("pages/s", f"{latency.count / max(seconds, 1e-9):,.0f}")
    report.row("GetMessages p50", f"{latency.p50:.2f} ms")
    report.row("GetMessages p95", f"{latency.p95:.2f} ms")
    report.row("GetMessages p99", f"{latency.p99:.2f} ms", "<= 5 ms", latency.p99 <= 5)
    report.row("GetMessages max", f"{latency.max:.2f} ms")
    if cpu0 is not None and cpu1 is not None:
        report.row("server CPU", f"{cpu1 - cpu0:.2f} s")
    if bench.probe is not None:
        report.row("server peak RSS", f"{bench.probe.peak_rss(start, end) / 2**20:.1f} MiB")
    report.problems.extend(found["problems"])
    report.histograms["GetMessages"] = found["latencies"]
    report.timelines["reads"] = {"pages/s": found["times"]}
    report.results = {
        "messages": found["newest"],
        "fill_seconds": round(fill_seconds, 1) if prepared else None,
        "pages": latency.count,
        "page_size": page,
        "pages_per_s": round(latency.count / max(seconds, 1e-9), 1),
        "latency_ms": latency.to_json(),
        "server_cpu_seconds": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
    }
    return report
