"""search: message search over many stored messages (1,000,000 by default)
in a few rooms, through SearchMessages.

The own server's database is filled before it starts, through the server's
public seeding API (crab.core.seeding.seed_conversations: realistic words
by Zipf's law, the searcher a member of every room but one). Queries mix
common words, rarer ones, two-word queries and prefixes."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from crab.core.seeding import seed_conversations, vocabulary
from crab_bench import rpc
from crab_bench.protocol import Searches, SignIn
from crab_bench.report import Latency, Report
from crab_bench.runner import Bench
from crab_bench.server import BenchError

SEARCHER = "search.reader"
TARGET_P99_MS = 20.0


def _fill(data_dir: Path, total: int, password: str, chats: int) -> int:
    return seed_conversations(data_dir, SEARCHER, password, total, chats).user_id


def prefill(total: int, chats: int) -> Any:
    """The `prepare` step: fills the own server's database; returns the
    seconds it took."""

    def prepare(data_dir: Path) -> float:
        started = time.perf_counter()
        _fill(data_dir, total, rpc.PASSWORD, chats)
        return time.perf_counter() - started

    return prepare


def queries(count: int, seed: int) -> list[str]:
    """What people type: a frequent word, a rarer one, two words, a prefix."""
    words = vocabulary()
    rng = random.Random(seed)
    out = []
    for n in range(count):
        common, rare = rng.choice(words[:150]), rng.choice(words[150:2000])
        kind = n % 4
        if kind == 0:
            out.append(common)
        elif kind == 1:
            out.append(rare)
        elif kind == 2:
            out.append(f"{rare} {common}")
        else:
            out.append(common[:3] if len(common) >= 3 else rare[:4])
    return out


def run(
    bench: Bench,
    fill_seconds: float | None,
    total: int,
    chats: int,
    requests: int,
    concurrency: int,
    limit: int,
    warmup: int,
    seed: int,
) -> Report:
    if fill_seconds is None:
        raise BenchError("the search bench fills its own server: --target is not supported")
    bench.say(f"stored {total:,} messages in {fill_seconds:.1f}s before the server started")
    report = Report(
        "search",
        {
            "messages": total,
            "chats": chats,
            "requests": requests,
            "concurrency": concurrency,
            "limit": limit,
            "warmup": warmup,
        },
        notes=bench.notes,
        latency_label="SearchMessages latency",
    )
    searcher = bench.new_bots(1, "q")[0][0]
    bench.pool.call(0, SignIn(searcher, SEARCHER, rpc.PASSWORD))
    cpu0, _ = bench.server_sample()
    start = time.time()
    asked = Searches(searcher, queries(200, seed), requests, concurrency, limit, warmup)
    with bench.track("SearchMessages", requests, 0) as tick:
        found = bench.pool.call_all({0: asked}, tick)[0]
    end = time.time()
    cpu1, _ = bench.server_sample()
    latency = Latency.of(found.latencies)
    seconds = max(found.times, default=end) - start
    ok = latency.p99 <= TARGET_P99_MS
    report.row("messages stored", f"{total:,} in {chats} rooms")
    report.row("filling them took", f"{fill_seconds:.1f} s ({total / fill_seconds:,.0f}/s)")
    report.row("searches", f"{latency.count:,} ({found.newest:,} hits)")
    report.row("searches/s", f"{latency.count / max(seconds, 1e-9):,.0f}")
    report.row("SearchMessages p50", f"{latency.p50:.2f} ms")
    report.row("SearchMessages p95", f"{latency.p95:.2f} ms")
    report.row("SearchMessages p99", f"{latency.p99:.2f} ms", f"<= {TARGET_P99_MS:g} ms", ok)
    report.row("SearchMessages max", f"{latency.max:.2f} ms")
    if cpu0 is not None and cpu1 is not None:
        report.row("server CPU", f"{cpu1 - cpu0:.2f} s")
    report.problems.extend(found.problems)
    report.histograms["SearchMessages"] = found.latencies
    report.timelines["searches"] = {"searches/s": found.times}
    report.results = {
        "messages": total,
        "fill_seconds": round(fill_seconds, 1),
        "searches": latency.count,
        "hits": found.newest,
        "searches_per_s": round(latency.count / max(seconds, 1e-9), 1),
        "latency_ms": latency.to_json(),
        "server_cpu_seconds": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2),
    }
    return report
