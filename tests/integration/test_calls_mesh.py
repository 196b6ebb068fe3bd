"""A call of three whole headless clients, peer to peer (a mesh: no SFU),
through a real server on 127.0.0.1 with real media (a tone each, a test
pattern for a camera): /video by one, F7 by the two others, everyone
connected to both others, hearing both and their pictures in the video pane;
one hangs up and the two others stay connected. Then the room grows
to four with mesh_max 3: /call by the fourth while three are in the call is
refused (the call is full), once one has left it joins, and a new call in
the room of four is refused.

Video at LocalMedia's 320x240: CallMedia takes no smaller camera size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from crab.config import Settings
from crab.core.app import Crab
from crab.tui.config import ChatConfig
from crab.tui.state import AppState
from tests.integration.test_app_headless import Driver, messages, person
from tests.integration.test_calls_headless import F7, F8, level_of

pytest.importorskip("aiortc")

MESH_MAX = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, mesh_max=3))


def devices(tone: int) -> ChatConfig:
    return ChatConfig(mic=f"sine:{tone}", speaker="none", camera="testsrc")


def connected_to(state: AppState, others: set[int]) -> bool:
    call = state.my_call
    return call is not None and all(call.links.get(o) == "connected" for o in others)


def hears(state: AppState, others: set[int]) -> bool:
    return all(level_of(state, o) > 0.01 for o in others)


async def join_room(owner: Driver, guest: Driver, name: str) -> None:
    await owner.say(f"/invite {name}")
    await guest.until(lambda s: len(s.invites) == 1)
    await guest.say("/accept")
    await guest.until(lambda s: s.chat(s.active_chat) is not None)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_mesh_call_of_three_and_a_fourth_held_to_mesh_max(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert crab.settings.limits.mesh_max == MESH_MAX
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    async with (
        person(crab, tmp_path / "alice", config=devices(440)) as alice,
        person(crab, tmp_path / "bob", config=devices(660)) as bob,
        person(crab, tmp_path / "carol", config=devices(880)) as carol,
        person(crab, tmp_path / "dave", config=devices(1000)) as dave,
    ):
        for driver, name in ((alice, "alice"), (bob, "bob"), (carol, "carol"), (dave, "dave")):
            await driver.sign_up(name)
        await alice.create_room("trio")
        chat = alice.state.active_chat
        await join_room(alice, bob, "bob")
        await join_room(alice, carol, "carol")
        three = (alice, bob, carol)
        ids = {}
        for d in (*three, dave):
            assert d.state.me is not None
            ids[d] = d.state.me.id

        await alice.say("/video")
        for callee in (bob, carol):
            await callee.until(lambda s: s.ringing_for_me() is not None)
            callee.type(F7)
        for me in three:
            others = {ids[d] for d in three if d is not me}
            await me.until(lambda s, others=others: connected_to(s, others), 30)
            await me.until(lambda s, others=others: hears(s, others), 30)
            await me.until(lambda s, me=me, others=others: others <= me.app.video_people(), 30)
            call = me.state.call_in(chat)
            assert call is not None and not call.sfu_url  # a mesh, not the SFU

        # Dave joins the room while three are in the call: /call would join
        # it, but a mesh takes mesh_max people at most; the notice says so.
        await join_room(alice, dave, "dave")
        await dave.say("/call")
        full = await dave.until(lambda s: "this call is full" in s.notice)
        assert "up to 3 people without an SFU" in full.notice and full.my_call is None

        # Carol hangs up: alice and bob still see and hear each other.
        carol.type(F8)
        await carol.until(lambda s: s.my_call is None)
        for me, other in ((alice, bob), (bob, alice)):
            # Her link closed (the bar keeps the closed link's line).
            await me.until(
                lambda s: s.my_call is not None and s.my_call.links.get(ids[carol]) == "closed", 15
            )
            await me.until(lambda s, other=other: connected_to(s, {ids[other]}))
            await me.until(lambda s, other=other: level_of(s, ids[other]) > 0.01)
            await me.until(lambda s, me=me: ids[carol] not in me.app.video_people())
            assert ids[other] in me.app.video_people()

        # Now there is room: dave's /call joins, and the mesh takes him in.
        await dave.say("/call")
        joined = await dave.until(
            lambda s: (c := s.call_in(chat)) is not None and ids[dave] in {p.id for p in c.joined()}
        )
        call = joined.call_in(chat)
        assert joined.my_call is not None and call is not None
        assert {p.id for p in call.joined()} == {ids[alice], ids[bob], ids[dave]}
        await dave.until(lambda s: connected_to(s, {ids[alice], ids[bob]}), 30)
        await dave.until(lambda s: hears(s, {ids[alice], ids[bob]}), 30)

        # Everyone hangs up; the call ends. A new call in a room of 4 with
        # mesh_max 3 and no SFU is refused, and the notice says why.
        for me in (dave, bob, alice):
            me.type(F8)
            await me.until(lambda s: s.my_call is None)
        await alice.until(
            lambda s: not s.calls and any(m.startswith("📞 video call · ") for m in messages(s))
        )
        await carol.say("/call")
        refused = await carol.until(lambda s: "without an SFU" in s.notice)
        assert "up to 3 people" in refused.notice and "has 4" in refused.notice
        assert "--sfu-url" in refused.notice
        assert refused.my_call is None
