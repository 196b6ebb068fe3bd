"""`crab bench search`: its fill (crab.core.seeding.seed_conversations) is
searchable through the API in the rooms the searcher is in, and a tiny run
against its own server passes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crab.core.app import Crab
from crab_bench.workloads.search import SEARCHER, _fill, queries
from tests.helpers.process import crab_env


async def test_search_fill_is_found_in_the_searchers_rooms_only(tmp_path: Path) -> None:
    from crab.config import Limits, Settings

    await asyncio.to_thread(_fill, tmp_path, 3000, "bench-password-1", 4)
    settings = Settings(data_dir=tmp_path, password_hashing="cheap", limits=Limits())
    app = await Crab.open(settings)
    try:
        tokens = await app.accounts.sign_in(SEARCHER, "bench-password-1")
        caller = app.accounts._access.read(tokens.access_token)
        rooms = [s.chat.id for s in await app.chats.mine(caller)]
        assert len(rooms) == 3  # every room but the last
        found = await app.chats.search.find(caller, "the", 0, 50, "")
        assert len(found.hits) == 50 and found.next_page_token
        assert {h.message.chat_id for h in found.hits} <= set(rooms)
        # "the": the last word of three letters or more matches as a prefix too.
        assert all(any(w.startswith("the") for w in h.message.text.split()) for h in found.hits)
        assert len(queries(8, 1)) == 8
    finally:
        await app.close()


COMMAND = (sys.executable, "-m", "crab.cli", "bench", "search", "--procs", "1")


@pytest.mark.slow  # crab bench and its server as processes
def test_tiny_search_bench_against_its_own_server_passes() -> None:
    done = subprocess.run(
        [*COMMAND, "--messages", "2000", "--requests", "40", "--warmup", "5", "--json"],
        capture_output=True,
        text=True,
        env=crab_env(),
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    assert report["workload"] == "search"
    search = report["results"]
    assert search["messages"] == 2000 and search["searches"] == 40 and search["hits"] > 0
    assert search["latency_ms"]["count"] == 40
