"""A call between two whole clients through a real coturn only: `crab
serve --turn-url ... --turn-secret ... --relay-only` hands each member
short-lived credentials, and the media goes relay to relay."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crab.config import CallSettings, Settings
from crab.core.app import Crab
from tests.helpers.coturn import Coturn, coturn
from tests.helpers.server import make_settings
from tests.integration.test_app_headless import person
from tests.integration.test_calls_headless import devices, level_of, meet

pytest.importorskip("aiortc")

__all__ = ["coturn"]


@pytest.fixture
def settings(tmp_path: Path, coturn: Coturn) -> Settings:
    calls = CallSettings(turn_urls=(coturn.url,), turn_secret=coturn.secret, relay_only=True)
    return dataclasses.replace(make_settings(tmp_path), calls=calls)


@pytest.fixture
async def crab(settings: Settings) -> AsyncIterator[Crab]:
    app = await Crab.open(settings)
    await app.start_worker()
    await app.start_server()
    yield app
    await app.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_call_through_turn_only(
    crab: Crab, tmp_path: Path, coturn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    async with (
        person(crab, tmp_path / "alice", config=devices(440)) as alice,
        person(crab, tmp_path / "bob", config=devices(660)) as bob,
    ):
        await meet(alice, bob)
        assert alice.state.me is not None and bob.state.me is not None
        a_id, b_id = alice.state.me.id, bob.state.me.id
        await alice.say("/call")
        rung = await bob.until(lambda s: s.ringing_for_me() is not None)
        call = rung.ringing_for_me()
        assert call is not None and call.relay_only
        (server,) = call.ice
        assert server.urls == (coturn.url,) and server.username.endswith(f":{b_id}")
        await bob.say("/answer")
        await alice.until(
            lambda s: s.my_call is not None and s.my_call.links.get(b_id) == "connected", 30
        )
        await bob.until(lambda s: level_of(s, a_id) > 0.01, 20)
        await alice.until(lambda s: level_of(s, b_id) > 0.01, 20)
        # Only relays were offered, on both sides: the media went through coturn.
        for me, other in ((alice, b_id), (bob, a_id)):
            media = me.app.runner.call_media() if me.app.runner else None
            assert media is not None
            offered = media.links[other].candidates
            assert offered and all(" typ relay" in c for c in offered), offered
        await bob.say("/hangup")
        await alice.until(lambda s: s.my_call is None)
