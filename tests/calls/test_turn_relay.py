"""Relay-only calls through a real coturn with the short-lived credentials
crab hands out: the tone gets through; a wrong secret never connects."""

from __future__ import annotations

import time

import pytest

from crab.calls.sources import Devices, LocalMedia
from crab.core.services.turn import IceServer, ice_servers
from tests.helpers.calls import Recorder, connect, make_link, tone_of
from tests.helpers.coturn import Coturn, coturn

__all__ = ["coturn"]

pytestmark = pytest.mark.slow


def servers_for(server: Coturn, secret: str, user_id: int) -> list[IceServer]:
    return ice_servers((server.url,), (), secret, user_id, ttl=600, now=time.time())


async def test_relay_only_call_carries_the_tone(coturn: Coturn) -> None:
    alice_media = LocalMedia(Devices(mic="sine:440"), video=False)
    bob_media = LocalMedia(Devices(mic="sine:660"), video=False)
    at_alice, at_bob = Recorder(), Recorder()
    caller = make_link(2, alice_media, at_alice, servers_for(coturn, coturn.secret, 1), True)
    callee = make_link(1, bob_media, at_bob, servers_for(coturn, coturn.secret, 2), True)
    try:
        offer = await caller.offer()
        # Relay only: the SDP carries relayed candidates and nothing else.
        candidates = [line for line in offer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" typ relay" in line for line in candidates), candidates
        await caller.accept(await callee.answer(offer))
        await at_alice.until("connected", lambda: "connected" in at_alice.states, 10)
        for recorder in (at_alice, at_bob):
            await recorder.until("audio", lambda r=recorder: r.samples() >= 1.2 * 48_000, 10)
        assert tone_of(at_bob) == pytest.approx(440, abs=5)
        assert tone_of(at_alice) == pytest.approx(660, abs=5)
    finally:
        await caller.close()
        await callee.close()
        await alice_media.close()
        await bob_media.close()


async def test_a_wrong_secret_never_connects(coturn: Coturn) -> None:
    alice_media = LocalMedia(Devices(mic="sine:440"), video=False)
    bob_media = LocalMedia(Devices(mic="sine:660"), video=False)
    at_alice, at_bob = Recorder(), Recorder()
    wrong = "not-" + coturn.secret
    caller = make_link(2, alice_media, at_alice, servers_for(coturn, wrong, 1), True)
    callee = make_link(1, bob_media, at_bob, servers_for(coturn, wrong, 2), True)
    try:
        began = time.monotonic()
        await connect(caller, callee)
        await at_alice.until("failed", lambda: "failed" in at_alice.states, 15)
        print(f"failed after {time.monotonic() - began:.1f} s")
        assert "connected" not in at_alice.states + at_bob.states
        assert not at_bob.pcm
    finally:
        await caller.close()
        await callee.close()
        await alice_media.close()
        await bob_media.close()
