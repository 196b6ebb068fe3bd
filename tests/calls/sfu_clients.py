"""Group-call participants for tests/calls/test_janus.py, run INSIDE the
Janus test namespace (tests/helpers/janus.py): `python -m
tests.calls.sfu_clients SCENARIO URL [JANUS_PID]` prints one JSON line.

Scenarios:
- three: three participants with lavfi test patterns (160x120@15) and tones
  of different frequencies join one after another; each reports, per other
  person, the frames received over a window, their size, and the tone
  found by FFT in the received audio; then the third leaves and the others
  report whether they dropped it; CPU of Janus and of the three clients
  (all in this process) over the window.
- wrong-pin: one participant creates a room with a pin, another joins with
  a wrong one: the SfuError text and how long it took.
- tokens: Janus checks signed tokens; one participant joins with a good
  token, then one joins with each of the other tokens given: the errors.
- janus-dies: two participants in a call, then Janus is killed: how long
  until each reports its own state "failed".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiortc.contrib.media import MediaPlayer
from av import AudioFrame

from crab.calls.sfu import SfuError, SfuRoom

SIZE = (160, 120)
FPS = 15
TONES = {1: 440, 2: 660, 3: 880}
WINDOW = 4.0  # seconds of media measured once everyone receives everyone
READY_TIMEOUT = 20.0
LEAVE_TIMEOUT = 10.0
ROOMS = {"three": 1001, "wrong-pin": 1002, "janus-dies": 1003, "tokens": 1004}
FAIL_TIMEOUT = 15.0


@dataclass
class Participant:
    user_id: int
    others: set[int]
    room: SfuRoom | None = None
    players: list[MediaPlayer] = field(default_factory=list)
    frames: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    audio: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    levels: dict[int, float] = field(default_factory=dict)
    states: list[tuple[int, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self, user_id: int, rgb: np.ndarray) -> None:
        self.frames[user_id] += 1
        self.sizes[user_id] = (rgb.shape[1], rgb.shape[0])
        self.changed.set()

    def sound(self, user_id: int, frame: AudioFrame) -> None:
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
        self.audio[user_id].append(samples.astype(np.float32))
        self.changed.set()

    def level(self, user_id: int, value: float) -> None:
        self.levels[user_id] = value

    def state(self, user_id: int, value: str) -> None:
        self.states.append((user_id, value))
        self.changed.set()

    def receives_everyone(self) -> bool:
        return all(self.frames[o] >= 3 and len(self.audio[o]) >= 10 for o in self.others)

    async def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"user {self.user_id}: {what} not within {timeout} s") from None


def tone(samples: list[np.ndarray], rate: int = 48_000) -> float:
    """The strongest frequency in the last second of received audio."""
    pcm = np.concatenate(samples)[-rate:]
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_room(
    url: str, room: int, p: Participant, pin: str, media: bool = True, token: str = ""
) -> SfuRoom:
    audio = video = None
    if media:
        size = f"{SIZE[0]}x{SIZE[1]}"
        video_player = MediaPlayer(f"testsrc2=size={size}:rate={FPS}", format="lavfi")
        audio_player = MediaPlayer(f"sine=frequency={TONES[p.user_id]}", format="lavfi")
        p.players = [video_player, audio_player]
        video, audio = video_player.video, audio_player.audio
    return SfuRoom(
        url,
        room,
        pin,
        p.user_id,
        f"user {p.user_id}",
        audio,
        video,
        [],
        False,
        on_frame=p.frame,
        on_level=p.level,
        on_state=p.state,
        on_audio=p.sound,
        token=token,
    )


async def three(url: str, janus_pid: int) -> dict[str, object]:
    ids = sorted(TONES)
    people = [Participant(i, set(ids) - {i}) for i in ids]
    joined_ms = []
    try:
        for p in people:
            p.room = make_room(url, ROOMS["three"], p, "sesame")
            started = time.monotonic()
            await p.room.join()
            joined_ms.append(round((time.monotonic() - started) * 1000))
        started = time.monotonic()
        await asyncio.gather(
            *(p.until(p.receives_everyone, READY_TIMEOUT, "media from everyone") for p in people)
        )
        ready_ms = round((time.monotonic() - started) * 1000)
        before = {p.user_id: dict(p.frames) for p in people}
        janus_before, clients_before = cpu_seconds(janus_pid), time.process_time()
        await asyncio.sleep(WINDOW)  # a measurement window, not a wait for something
        janus_cpu = (cpu_seconds(janus_pid) - janus_before) / WINDOW
        clients_cpu = (time.process_time() - clients_before) / WINDOW
        pairs = {
            f"{o}->{p.user_id}": {
                "fps": round((p.frames[o] - before[p.user_id].get(o, 0)) / WINDOW, 1),
                "size": list(p.sizes[o]),
                "tone": round(tone(p.audio[o]), 1),
                "level": round(p.levels.get(o, 0.0), 3),
            }
            for p in people
            for o in sorted(p.others)
        }
        leaver, stayers = people[-1], people[:-1]
        assert leaver.room is not None
        started = time.monotonic()
        await leaver.room.leave()
        for p in stayers:
            room = p.room
            assert room is not None
            await p.until(
                lambda p=p, room=room: (
                    (leaver.user_id, "left") in p.states and leaver.user_id not in room.subscribed
                ),
                LEAVE_TIMEOUT,
                f"dropping user {leaver.user_id}",
            )
        left_ms = round((time.monotonic() - started) * 1000)
        return {
            "joined_ms": joined_ms,
            "ready_ms": ready_ms,
            "pairs": pairs,
            "left_ms": left_ms,
            "still_subscribed": {
                str(p.user_id): sorted(p.room.subscribed) for p in stayers if p.room
            },
            "janus_cpu": round(janus_cpu * 100, 1),
            "clients_cpu": round(clients_cpu * 100, 1),
        }
    finally:
        for p in people:
            if p.room is not None:
                await p.room.leave()
        stop_players(people)


def stop_players(people: list[Participant]) -> None:
    for p in people:
        for player in p.players:
            for track in (player.audio, player.video):
                if track is not None:
                    track.stop()


async def wrong_pin(url: str) -> dict[str, object]:
    owner, intruder = Participant(1, set()), Participant(2, set())
    owner.room = make_room(url, ROOMS["wrong-pin"], owner, "right", media=False)
    intruder.room = make_room(url, ROOMS["wrong-pin"], intruder, "wrong", media=False)
    try:
        await owner.room.join()
        started = time.monotonic()
        try:
            await intruder.room.join()
        except SfuError as error:
            return {"error": str(error), "ms": round((time.monotonic() - started) * 1000)}
        return {"error": None}
    finally:
        await intruder.room.leave()
        await owner.room.leave()


async def tokens(url: str, good: str, others: list[str]) -> dict[str, object]:
    owner = Participant(1, set())
    owner.room = make_room(url, ROOMS["tokens"], owner, "pin", media=False, token=good)
    errors: list[str | None] = []
    try:
        await owner.room.join()
        for n, token in enumerate(others, start=2):
            room = make_room(url, ROOMS["tokens"], Participant(n, set()), "pin", False, token)
            try:
                await room.join()
                errors.append(None)
            except SfuError as error:
                errors.append(str(error))
            finally:
                await room.leave()
        return {"errors": errors}
    finally:
        await owner.room.leave()


async def janus_dies(url: str, janus_pid: int) -> dict[str, object]:
    people = [Participant(1, {2}), Participant(2, {1})]
    try:
        for p in people:
            p.room = make_room(url, ROOMS["janus-dies"], p, "sesame")
            await p.room.join()
        await asyncio.gather(
            *(p.until(p.receives_everyone, READY_TIMEOUT, "media from the other") for p in people)
        )
        os.kill(janus_pid, signal.SIGKILL)
        started = time.monotonic()
        await asyncio.gather(
            *(
                p.until(lambda p=p: (p.user_id, "failed") in p.states, FAIL_TIMEOUT, "failure")
                for p in people
            )
        )
        return {"failed_ms": round((time.monotonic() - started) * 1000)}
    finally:
        await asyncio.gather(*(p.room.leave() for p in people if p.room is not None))
        stop_players(people)


def main() -> None:
    scenario, url = sys.argv[1], sys.argv[2]
    if scenario == "three":
        result = asyncio.run(three(url, int(sys.argv[3])))
    elif scenario == "tokens":
        result = asyncio.run(tokens(url, sys.argv[3], sys.argv[4:]))
    elif scenario == "janus-dies":
        result = asyncio.run(janus_dies(url, int(sys.argv[3])))
    elif scenario == "wrong-pin":
        result = asyncio.run(wrong_pin(url))
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
