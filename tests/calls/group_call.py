"""A whole group call through crab and Janus, for tests/calls/test_group_sfu.py,
run INSIDE the Janus test namespace (tests/helpers/janus.py):
`python -m tests.calls.group_call JANUS_URL SECRET` prints one JSON line.

In this one process: a crab server (SQLite in a temporary folder) with the
SFU at JANUS_URL, its token secret SECRET and mesh_max 2, and three whole
headless clients (the tests' ChatApp driver) with a tone each and a test
pattern for a camera. alice starts a video call in a room of three, bob and
carol answer with F7; the server puts the call through the SFU, each member
joins Janus with the signed token the server gave them (someone with the
room and pin but no token is refused). Then carol hangs up, then bob: the
call ends for alice.

What each client hears is tapped where the SFU hands the client a person's
sound (CallMedia._play, which still plays it): the tone is found by FFT."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import numpy as np
from av import AudioFrame

from crab.calls.sfu import SfuError, SfuRoom
from crab.config import CallSettings
from crab.core.app import Crab
from crab.tui.call_media import CallMedia
from crab.tui.config import ChatConfig
from crab.tui.state import AppState
from tests.helpers.server import make_settings
from tests.integration.test_app_headless import Driver, messages, person
from tests.integration.test_calls_headless import F7, F8, level_of

TONES = {"alice": 440, "bob": 660, "carol": 880}
MEDIA_TIMEOUT = 40.0  # three clients and Janus on two shared cores
RATE = 48_000


class Ears:
    """The sound one client got through the SFU, per person."""

    def __init__(self) -> None:
        self.pcm: dict[int, list[np.ndarray]] = defaultdict(list)

    def tap(self, media: CallMedia) -> None:
        play = media._play

        def heard(user_id: int, frame: AudioFrame) -> None:
            samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
            self.pcm[user_id].append(samples.astype(np.float32))
            play(user_id, frame)

        media._play = heard  # type: ignore[method-assign]

    def seconds(self, user_id: int) -> float:
        return sum(chunk.size for chunk in self.pcm[user_id]) / RATE

    def tone(self, user_id: int) -> float:
        """The strongest frequency in the last second heard from user_id."""
        pcm = np.concatenate(self.pcm[user_id])[-RATE:]
        spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
        spectrum[0] = 0
        return float(np.fft.rfftfreq(len(pcm), 1 / RATE)[int(np.argmax(spectrum))])


async def intruder(url: str, room: int, pin: str) -> str | None:
    """Someone with the room and its pin but no token from crab: Janus's error."""
    sfu = SfuRoom(
        url,
        room,
        pin,
        99,
        "intruder",
        None,
        None,
        [],
        False,
        on_frame=lambda user_id, frame: None,
        on_level=lambda user_id, level: None,
        on_state=lambda user_id, state: None,
    )
    try:
        await sfu.join()
    except SfuError as error:
        return str(error)
    finally:
        await sfu.leave()
    return None


@asynccontextmanager
async def crab_server(folder: Path, url: str, secret: str) -> AsyncIterator[Crab]:
    settings = make_settings(folder, calls=CallSettings(sfu_url=url, sfu_secret=secret))
    settings = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, mesh_max=2)
    )
    app = await Crab.open(settings)
    try:
        await app.start_worker()
        await app.start_server()
        yield app
    finally:
        await app.close()


def receives(state: AppState, driver: Driver, ears: Ears, others: set[int]) -> bool:
    return (
        state.my_call is not None
        and all(state.my_call.links.get(o) == "connected" for o in others)
        and others <= driver.app.video_people()
        and all(level_of(state, o) > 0.01 and ears.seconds(o) >= 2.5 for o in others)
    )


async def scenario(url: str, secret: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="crab-group-") as tmp:
        folder = Path(tmp)
        async with crab_server(folder, url, secret) as crab, AsyncExitStack() as stack:
            people: dict[str, Driver] = {}
            for name, hz in TONES.items():
                config = ChatConfig(mic=f"sine:{hz}", speaker="none", camera="testsrc")
                people[name] = await stack.enter_async_context(
                    person(crab, folder / name, config=config)
                )
                await people[name].sign_up(name)
            alice, bob, carol = people["alice"], people["bob"], people["carol"]
            ids: dict[str, int] = {}
            ears: dict[str, Ears] = {}
            for name, driver in people.items():
                assert driver.state.me is not None and driver.app.runner is not None
                ids[name] = driver.state.me.id
                media = driver.app.runner.call_media()
                assert media is not None, "no calls extra"
                ears[name] = Ears()
                ears[name].tap(media)

            await alice.create_room("group")
            chat = alice.state.active_chat
            for guest in ("bob", "carol"):
                await alice.say(f"/invite {guest}")
                await people[guest].until(lambda s: len(s.invites) == 1)
                await people[guest].say("/accept")
                await people[guest].until(lambda s: s.chat(s.active_chat) is not None)

            started = time.monotonic()
            await alice.say("/video")
            for callee in (bob, carol):
                await callee.until(lambda s: s.ringing_for_me() is not None)
                callee.type(F7)
            calls = {}
            for name, driver in people.items():
                state = await driver.until(lambda s: s.my_call is not None)
                call = state.call_in(chat)
                assert call is not None
                calls[name] = {"sfu_url": call.sfu_url, "sfu_room": call.sfu_room}
            for name, driver in people.items():
                others = {ids[o] for o in people if o != name}
                await driver.until(
                    lambda s, d=driver, e=ears[name], o=others: receives(s, d, e, o),
                    MEDIA_TIMEOUT,
                )
            ready_ms = round((time.monotonic() - started) * 1000)
            room = alice.state.call_in(chat)
            assert room is not None
            without_token = await intruder(url, room.sfu_room, room.sfu_pin)
            heard = {
                f"{other}->{name}": {
                    "tone": round(ears[name].tone(ids[other]), 1),
                    "level": round(level_of(people[name].state, ids[other]), 3),
                }
                for name in people
                for other in people
                if other != name
            }

            # carol hangs up: alice and bob see her leave and go on hearing
            # each other (what came after her leaving).
            carol.type(F8)
            await carol.until(lambda s: s.my_call is None)
            go_on = {}
            for name, other in (("alice", "bob"), ("bob", "alice")):
                driver, me = people[name], ears[name]
                await driver.until(
                    lambda s: (
                        s.my_call is not None and s.my_call.links.get(ids["carol"]) != "connected"
                    ),
                    15,
                )
                mark = me.seconds(ids[other])
                await driver.until(
                    lambda s, me=me, o=ids[other], m=mark: me.seconds(o) >= m + 1.0, 15
                )
                mine = driver.state.my_call
                go_on[f"{other}->{name}"] = {
                    "tone": round(me.tone(ids[other]), 1),
                    "carol_link": mine.links.get(ids["carol"]) if mine else None,
                }

            # bob hangs up: alice is alone, the call ends, its line is left.
            bob.type(F8)
            await bob.until(lambda s: s.my_call is None)
            ended = await alice.until(lambda s: s.my_call is None and "call ended" in s.notice)
            line = await alice.until(
                lambda s: any(m.startswith("📞 video call · ") for m in messages(s))
            )
            return {
                "ids": ids,
                "calls": calls,
                "ready_ms": ready_ms,
                "without_token": without_token,
                "heard": heard,
                "go_on": go_on,
                "ended_notice": ended.notice,
                "line": [m for m in messages(line) if m.startswith("📞")],
                "live_calls": len(alice.state.calls),
            }


def main() -> None:
    print(json.dumps(asyncio.run(scenario(sys.argv[1], sys.argv[2]))))


if __name__ == "__main__":
    main()
