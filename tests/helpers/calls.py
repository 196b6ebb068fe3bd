"""What the call media tests share: a recorder for one PeerLink's
callbacks that a test can wait on, a tone finder, and a link factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from crab.calls.audio import RATE, Pcm
from crab.calls.peer import PeerLink
from crab.calls.sources import LocalMedia
from crab.calls.video import Rgb
from crab.core.services.turn import IceServer


@dataclass
class Recorder:
    """Everything one link reported, with arrival times."""

    frame_times: list[float] = field(default_factory=list)
    frame_shapes: set[tuple[int, ...]] = field(default_factory=set)
    levels: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    pcm: list[Pcm] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self, _user: int, picture: Rgb) -> None:
        self.frame_times.append(time.monotonic())
        self.frame_shapes.add(picture.shape)
        self.changed.set()

    def level(self, _user: int, value: float) -> None:
        self.levels.append(value)
        self.changed.set()

    def state(self, _user: int, value: str) -> None:
        self.states.append(value)
        self.changed.set()

    def audio(self, _user: int, pcm: Pcm) -> None:
        self.pcm.append(pcm)
        self.changed.set()

    def samples(self) -> int:
        return sum(chunk.size for chunk in self.pcm)

    async def until(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        """Waits, on the callbacks, until ready() holds."""
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue


def make_link(
    user_id: int,
    media: LocalMedia,
    recorder: Recorder,
    servers: list[IceServer] | None = None,
    relay_only: bool = False,
    speaker: str = "none",
) -> PeerLink:
    return PeerLink(
        user_id,
        media,
        servers or [],
        relay_only,
        on_frame=recorder.frame,
        on_level=recorder.level,
        on_state=recorder.state,
        speaker=speaker,
        on_audio=recorder.audio,
    )


async def connect(caller: PeerLink, callee: PeerLink) -> None:
    offer = await caller.offer()
    answer = await callee.answer(offer)
    await caller.accept(answer)


def dominant_frequency(pcm: Pcm) -> float:
    """The loudest frequency in the samples (Hann window; 1 s of audio gives
    1 Hz bins)."""
    samples = pcm.astype(np.float64) * np.hanning(pcm.size)
    spectrum = np.abs(np.fft.rfft(samples))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(pcm.size, 1 / RATE)[int(np.argmax(spectrum))])


def tone_of(recorder: Recorder, skip: float = 0.2, seconds: float = 1.0) -> float:
    pcm = np.concatenate(recorder.pcm)
    start = int(skip * RATE)
    return dominant_frequency(pcm[start : start + int(seconds * RATE)])
