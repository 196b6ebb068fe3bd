"""A video call between two whole clients, headless, through a real server
on 127.0.0.1 with real media (a tone each and a test pattern for a camera):
/video rings the other, F7 answers, pictures and sound flow both ways, F9
mutes, F8 hangs up, and the call leaves its line in the chat."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crab.core.app import Crab
from crab.tui.config import ChatConfig
from crab.tui.state import AppState
from tests.integration.test_app_headless import Driver, messages, person

pytest.importorskip("aiortc")

F7, F8, F9, F10 = "\x1b[18~", "\x1b[19~", "\x1b[20~", "\x1b[21~"


def devices(tone: int) -> ChatConfig:
    return ChatConfig(mic=f"sine:{tone}", speaker="none", camera="testsrc")


async def meet(alice: Driver, bob: Driver) -> int:
    """Alice and bob in a room of their own; its id."""
    await alice.sign_up("alice")
    await bob.sign_up("bob")
    await alice.create_room("calls")
    await alice.say("/invite bob")
    await bob.until(lambda s: len(s.invites) == 1)
    await bob.say("/accept")
    state = await bob.until(lambda s: s.chat(s.active_chat) is not None)
    assert state.active_chat is not None
    return state.active_chat


def level_of(state: AppState, user_id: int) -> float:
    return state.my_call.levels.get(user_id, 0.0) if state.my_call else 0.0


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_video_call_between_two_clients(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    async with (
        person(crab, tmp_path / "alice", config=devices(440)) as alice,
        person(crab, tmp_path / "bob", config=devices(660)) as bob,
    ):
        chat = await meet(alice, bob)
        assert alice.state.me is not None and bob.state.me is not None
        a_id, b_id = alice.state.me.id, bob.state.me.id

        bells = bob.state.ring
        await alice.say("/video")
        await alice.until(lambda s: s.my_call is not None and s.my_call.chat_id == chat)
        rung = await bob.until(lambda s: s.ringing_for_me() is not None)
        assert rung.ring > bells and "alice is calling" in rung.notice

        bob.type(F7)
        await bob.until(lambda s: s.my_call is not None)
        await alice.until(
            lambda s: s.my_call is not None and s.my_call.links.get(b_id) == "connected"
        )
        await bob.until(
            lambda s: s.my_call is not None and s.my_call.links.get(a_id) == "connected"
        )

        # Pictures both ways, into each one's video pane; sound both ways.
        for me, other in ((alice, b_id), (bob, a_id)):
            await me.until(lambda s, me=me, other=other: other in me.app.video_people(), 20)
            await me.until(lambda s, other=other: level_of(s, other) > 0.01, 20)

        # F9 mutes alice: bob hears her fall silent.
        alice.type(F9)
        await alice.until(lambda s: s.my_call is not None and s.my_call.muted)
        await bob.until(lambda s: level_of(s, a_id) < 0.001, 20)
        alice.type(F9)
        await bob.until(lambda s: level_of(s, a_id) > 0.01, 20)

        # F8: bob hangs up; the call ends for both and leaves its line.
        bob.type(F8)
        await bob.until(lambda s: s.my_call is None)
        await alice.until(lambda s: s.my_call is None and "call ended" in s.notice)
        line = await alice.until(lambda s: any("video call ·" in m for m in messages(s)))
        assert any(m.startswith("📞 video call · ") for m in messages(line))
        assert alice.app.video_people() == set()


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_declined_call_and_a_call_without_the_other(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    async with (
        person(crab, tmp_path / "alice", config=devices(440)) as alice,
        person(crab, tmp_path / "bob", config=devices(660)) as bob,
    ):
        await meet(alice, bob)
        await alice.say("/call")
        await bob.until(lambda s: s.ringing_for_me() is not None)
        bob.type(F8)  # declines
        await alice.until(lambda s: s.my_call is None and "declined" in s.notice)
        await bob.until(lambda s: s.ringing_for_me() is None)
        await alice.until(lambda s: "📞 declined call" in messages(s))
        # Keys with no call say so, and change nothing.
        bob.type(F9)
        await bob.until(lambda s: "not in a call" in s.notice)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_without_the_calls_extra_the_client_says_how_to_get_it(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if aiortc were not installed: importing the media side fails.
    monkeypatch.setitem(sys.modules, "crab.tui.call_media", None)
    async with (
        person(crab, tmp_path / "alice", config=devices(440)) as alice,
        person(crab, tmp_path / "bob", config=devices(660)) as bob,
    ):
        await meet(alice, bob)
        await alice.say("/call")
        await alice.until(lambda s: "pip install 'crab[calls]'" in s.notice)
        # It did not stay in a call it cannot carry: bob's ring ends.
        await alice.until(lambda s: s.my_call is None)
        await bob.until(lambda s: s.calls == ())


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_missing_device_is_said_and_the_call_left(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    nothing = ChatConfig(mic="file:/no/such/talk.wav", speaker="none", camera="none")
    async with (
        person(crab, tmp_path / "alice", config=nothing) as alice,
        person(crab, tmp_path / "bob", config=devices(660)) as bob,
    ):
        await meet(alice, bob)
        await alice.say("/call")
        said = await alice.until(lambda s: "/no/such/talk.wav" in s.notice)
        assert said.my_call is None
        await bob.until(lambda s: s.calls == ())
