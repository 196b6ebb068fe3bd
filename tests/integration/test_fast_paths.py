"""The fast paths on grpclib's and h2's internals (api/internals.py) step
aside when an internal they need is gone or when CRAB_FAST_PATHS=0: the
frames then go through grpclib and arrive the same. The safety features on
internals (the request size check, the connection limits) refuse to start
instead."""

from __future__ import annotations

import asyncio
import logging

import grpclib.protocol
import grpclib.server
import pytest

from crab.core.api import fast_writes, internals
from crab.core.api.internals import Internals
from tests.helpers.chats import create_room, is_message, join
from tests.helpers.server import ClientFactory


def test_the_installed_grpclib_and_h2_have_every_internal_crab_uses() -> None:
    found = Internals()
    assert found.fast_writes_problems == []
    assert found.size_check_problems == []
    assert found.connection_limits_problems == []


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (grpclib.protocol.Connection, "data_send_process"),
        (grpclib.server.Stream, "_send_initial_metadata_done"),
        (grpclib.protocol.Stream, "data_sent"),
    ],
)
def test_a_missing_internal_turns_fast_writes_off_with_its_name(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str
) -> None:
    monkeypatch.delattr(owner, name)
    found = Internals()
    assert not found.fast_writes
    assert any(name in problem for problem in found.fast_writes_problems)


def test_crab_fast_paths_0_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRAB_FAST_PATHS", "0")
    found = Internals()
    assert not found.fast_paths_allowed
    assert not found.fast_writes
    assert found.fast_writes_problems == []


def test_the_reason_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(grpclib.protocol.Connection, "data_send_process")
    found = Internals()
    with caplog.at_level(logging.INFO, logger=internals.log.name):
        found.log_once()
        found.log_once()
    (record,) = caplog.records
    assert "data_send_process" in record.getMessage()


def test_a_missing_internal_of_the_size_check_stops_the_server_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(grpclib.protocol.Stream, "recv_data")
    found = Internals()
    assert found.size_check_problems
    with pytest.raises(RuntimeError, match="recv_data"):
        found.require_safety()


def test_a_missing_internal_of_the_connection_limits_stops_the_server_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(grpclib.protocol.Connection, "flush")
    with pytest.raises(RuntimeError, match="flush"):
        Internals().require_safety()


def test_a_server_without_grpclib_s_fields_stops_the_server_starting() -> None:
    with pytest.raises(RuntimeError, match="_server_closed_fut"):
        internals.check_server(object())


async def test_with_an_internal_missing_frames_go_through_grpclib_and_arrive(
    connect: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.delattr(grpclib.protocol.Connection, "data_send_process")
        found = Internals()
    monkeypatch.setattr(fast_writes, "installed", found)
    alice = await connect("alice")
    bob = await connect("bob")
    room = await create_room(alice, "fallback")
    await join(alice, bob, room)
    before = fast_writes.written.copy()
    async with alice.session() as a_live, bob.session() as b_live:
        texts = [f"m{i}" for i in range(20)]
        await asyncio.gather(*(a_live.send(room.id, text) for text in texts))
        got = await b_live.collect(is_message, len(texts))
        assert [f.message.text for f in got] == texts
    assert fast_writes.written["fast"] == before["fast"]
    assert fast_writes.written["grpclib"] > before["grpclib"]
