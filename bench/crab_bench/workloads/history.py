"""history: one chat holding many messages (1,000,000 by default), read a
page at a time at random positions through GetMessages.

The own server's database is filled before the server starts, through the
server's public seeding API (crab.core.seeding: executemany in large
transactions): the API would take an hour for a million sends. With
--target nothing is filled: name a chat that already holds the messages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from crab.core.seeding import seed_history
from crab_bench import rpc
from crab_bench.protocol import History, SignIn
from crab_bench.report import Latency, Report
from crab_bench.runner import Bench
from crab_bench.server import BenchError

READER = "history.reader"


def _fill(data_dir: Path, total: int, password: str) -> int:
    """The reader's account and its chat of `total` messages, through the
    server's public seeding API (crab.core.seeding); returns the chat's id."""
    return seed_history(data_dir, READER, password, total).chat_id


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
    bench.pool.call(0, SignIn(reader, username, password))
    cpu0, _ = bench.server_sample()
    start = time.time()
    with bench.track("GetMessages", requests, 0) as tick:
        found = bench.pool.call_all(
            {
                0: History(
                    index=reader,
                    chat_id=chat_id,
                    newest=total if prepared else 0,
                    requests=requests,
                    concurrency=concurrency,
                    page=page,
                    warmup=warmup,
                    seed=seed,
                )
            },
            tick,
        )[0]
    end = time.time()
    cpu1, _ = bench.server_sample()
    latency = Latency.of(found.latencies)
    seconds = max(found.times, default=end) - start
    if prepared is not None:
        report.row("messages stored", f"{total:,}")
        report.row("filling them took", f"{fill_seconds:.1f} s ({total / fill_seconds:,.0f}/s)")
    report.row("newest message id", f"{found.newest:,}")
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
    report.problems.extend(found.problems)
    report.histograms["GetMessages"] = found.latencies
    report.timelines["reads"] = {"pages/s": found.times}
    report.results = {
        "messages": found.newest,
        "fill_seconds": round(fill_seconds, 1) if prepared else None,
        "pages": latency.count,
        "page_size": page,
        "pages_per_s": round(latency.count / max(seconds, 1e-9), 1),
        "latency_ms": latency.to_json(),
        "server_cpu_seconds": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
    }
    return report
