"""The server's log, from a real `crab serve`: a client leaving its stream
costs no line at the default level (grpclib's "Request was cancelled" is
DEBUG), `--log-format json` writes one JSON object a line, and bad values
are refused before the server starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from crab.client.connection import CrabClient
from tests.helpers.process import CrabProcess, Servers, run_crab
from tests.helpers.server import PASSWORD

pytestmark = pytest.mark.slow  # crab serve as a real process

LEAVES = 5
CANCELLED = "Request was cancelled"


async def come_and_go(server: CrabProcess, name: str) -> None:
    """Signs up, then opens and leaves a session stream LEAVES times (each
    leave is a cancelled call on the server), then stops the server."""
    client = CrabClient("127.0.0.1", server.port)
    try:
        await client.sign_up(name, PASSWORD)
        for _ in range(LEAVES):
            async with client.session():
                pass
        await client.who_am_i()  # the server has handled every leave by now
    finally:
        client.close()
    server.terminate()
    assert await asyncio.to_thread(server.wait) == 0


async def test_leaving_clients_cost_no_line_at_info(servers: Servers, tmp_path: Path) -> None:
    server = await servers.start(tmp_path)
    await come_and_go(server, "alice")
    assert CANCELLED not in server.log
    assert "account alice signed up" in server.log  # what a person does care about
    assert server.log.rstrip().endswith("stopped")


async def test_debug_shows_each_cancelled_call(servers: Servers, tmp_path: Path) -> None:
    server = await servers.start(tmp_path, "--log-level", "debug")
    await come_and_go(server, "alice")
    cancelled = [line for line in server.lines if CANCELLED in line]
    assert len(cancelled) == LEAVES
    assert all(" DEBUG grpclib.server: " in line for line in cancelled)


async def test_json_lines_for_log_shippers(servers: Servers, tmp_path: Path) -> None:
    server = await servers.start(tmp_path, "--log-format", "json", "--log-level", "DEBUG")
    await come_and_go(server, "bob")
    entries = [json.loads(line) for line in server.lines]  # every line is one object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert entries[0]["time"].endswith("+00:00")  # ISO 8601, UTC
    listening = [e for e in entries if e["message"].startswith("crab listening on grpc://")]
    assert len(listening) == 1 and listening[0]["level"] == "INFO"
    assert listening[0]["logger"] == "crab"
    cancelled = [e for e in entries if e["message"].startswith(CANCELLED)]
    assert len(cancelled) == LEAVES and {e["level"] for e in cancelled} == {"DEBUG"}
    assert entries[-1]["message"] == "stopped"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--log-level", "loud"),
        ("--log-level", ""),
        ("--log-format", "xml"),
        ("--log-format", "json\n"),
    ],
)
def test_bad_values_are_refused_before_start(tmp_path: Path, option: str, value: str) -> None:
    for command in ("serve", "worker"):
        done = run_crab(command, "--data-dir", str(tmp_path), option, value)
        assert done.returncode == 2, done.stderr
        assert f"Invalid value for '{option}'" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_environment_sets_them_too(tmp_path: Path) -> None:
    done = run_crab("serve", "--data-dir", str(tmp_path), env={"CRAB_LOG_FORMAT": "yaml"})
    assert done.returncode == 2 and "Invalid value for '--log-format'" in done.stderr
