"""My media in the call this client is in: one PeerLink per other person (a
mesh), or one SfuRoom when the call goes through the SFU (docs/calls.md).

Who offers: of two people in a call, the one with the smaller user id; the
other waits for the offer. Each side learns of the other from the server's
Call frames, so neither offers twice, and a newcomer is offered to by those
already in. SDP travels over crab's session stream (`send_signal`); aiortc
gathers every candidate before its SDP is ready, so there is no trickle.

Every operation takes the engine's lock: the effects that drive it run as
separate tasks, and an offer must not be handled before the join it follows
(asyncio's lock is first come, first served)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import numpy as np
from av import AudioFrame

from crab.calls.audio import ToPcm
from crab.calls.ice import use_ice_hosts_from_env
from crab.calls.peer import PeerLink
from crab.calls.sources import Devices, LocalMedia
from crab.calls.speaker import Speaker
from crab.core.services.turn import IceServer
from crab.tui.state import CallItem

log = logging.getLogger(__name__)

LEVELS_EVERY = 0.25  # seconds between two audio-level reports (the call bar)
QUALITY_EVERY = 8  # level reports between two looks at the connection quality

SendSignal = Callable[[str, int, int, str, str], Awaitable[None]]  # call, chat, to, type, sdp
OnFrame = Callable[[int, np.ndarray], None]
OnLink = Callable[[str, int, str], None]  # call id, user id, state
OnLevels = Callable[[str, dict[int, float], dict[int, str]], None]


class Sfu(Protocol):
    async def join(self) -> None: ...
    async def leave(self) -> None: ...


class CallMedia:
    def __init__(
        self,
        me: int,
        devices: Devices,
        send_signal: SendSignal,
        on_frame: OnFrame,
        on_link: OnLink,
        on_levels: OnLevels,
    ) -> None:
        use_ice_hosts_from_env()
        self.me = me
        self.devices = devices
        self._send_signal = send_signal
        self._on_frame = on_frame
        self._on_link = on_link
        self._on_levels = on_levels
        self._lock = asyncio.Lock()
        self.call: CallItem | None = None
        self.media: LocalMedia | None = None
        self.links: dict[int, PeerLink] = {}
        self._sfu: Sfu | None = None
        self._levels: dict[int, float] = {}
        self._speakers: dict[int, tuple[ToPcm, Speaker]] = {}  # through the SFU
        self._reporter: asyncio.Task[None] | None = None

    # ---- what the effects ask ---------------------------------------------

    async def join(self, call: CallItem) -> None:
        async with self._lock:
            if self.call is not None:
                await self._stop()
            self.call = call
            self.media = LocalMedia(self.devices, video=call.video)
            self._reporter = asyncio.create_task(self._report())
            if call.sfu_url:
                await self._join_sfu(call)
            else:
                await self._reconcile(call)

    async def update(self, call: CallItem) -> None:
        async with self._lock:
            if self.call is None or call.id != self.call.id:
                return
            self.call = call
            if not call.sfu_url:
                await self._reconcile(call)

    async def signal(self, call_id: str, from_id: int, sdp_type: str, sdp: str) -> None:
        async with self._lock:
            call = self.call
            if call is None or call.id != call_id or from_id == self.me:
                return
            if sdp_type == "offer":
                old = self.links.pop(from_id, None)
                if old is not None:  # they started over (a new device): so do we
                    await old.close()
                link = self._link(from_id, call)
                answer = await link.answer(sdp)
                await self._send_signal(call.id, call.chat_id, from_id, "answer", answer)
            elif sdp_type == "answer":
                found = self.links.get(from_id)
                if found is not None:
                    await found.accept(sdp)

    def controls(self, muted: bool, camera: bool) -> None:
        if self.media is not None:
            self.media.set_muted(muted)
            self.media.set_camera(camera)

    def self_view(self) -> np.ndarray | None:
        return None if self.media is None else self.media.self_view()

    async def leave(self) -> None:
        async with self._lock:
            await self._stop()

    # ---- the mesh ---------------------------------------------------------

    async def _reconcile(self, call: CallItem) -> None:
        """Links to exactly those in the call; I offer to those above me."""
        there = {p.id for p in call.joined() if p.id != self.me}
        for user_id in set(self.links) - there:
            await self.links.pop(user_id).close()
            self._levels.pop(user_id, None)
        for user_id in sorted(there - set(self.links)):
            if self.me < user_id:
                link = self._link(user_id, call)
                offer = await link.offer()
                await self._send_signal(call.id, call.chat_id, user_id, "offer", offer)

    def _link(self, user_id: int, call: CallItem) -> PeerLink:
        assert self.media is not None
        servers = [IceServer(s.urls, s.username, s.credential) for s in call.ice]
        link = PeerLink(
            user_id,
            self.media,
            servers,
            call.relay_only,
            on_frame=self._on_frame,
            on_level=self._level,
            on_state=lambda uid, state: self._on_link(call.id, uid, state),
            speaker=self.devices.speaker,
        )
        self.links[user_id] = link
        return link

    async def _join_sfu(self, call: CallItem) -> None:
        from crab.calls.sfu import SfuRoom  # only calls through the SFU need httpx

        assert self.media is not None
        servers = [IceServer(s.urls, s.username, s.credential) for s in call.ice]
        room = SfuRoom(
            call.sfu_url,
            call.sfu_room,
            call.sfu_pin,
            self.me,
            str(self.me),
            self.media.audio_track(),
            self.media.video_track(),
            servers,
            call.relay_only,
            on_frame=self._on_frame,
            on_level=self._level,
            on_state=lambda uid, state: self._on_link(call.id, uid, state),
            on_audio=self._play,
            token=call.sfu_token,
        )
        self._sfu = room
        await room.join()

    def _play(self, user_id: int, frame: AudioFrame) -> None:
        """Through the SFU, each person's sound comes here: one speaker
        stream each, which the sound server mixes (as PeerLink does)."""
        found = self._speakers.get(user_id)
        if found is None:
            found = self._speakers[user_id] = (ToPcm(), Speaker(self.devices.speaker))
        to_pcm, speaker = found
        speaker.play(to_pcm(frame))

    def _level(self, user_id: int, level: float) -> None:
        self._levels[user_id] = level

    async def _report(self) -> None:
        """The call bar's levels a few times a second; quality now and then."""
        quality: dict[int, str] = {}
        tick = 0
        while True:
            await asyncio.sleep(LEVELS_EVERY)
            call = self.call
            if call is None:
                return
            if tick % QUALITY_EVERY == 0:
                for user_id, link in list(self.links.items()):
                    with contextlib.suppress(Exception):
                        quality[user_id] = await link.quality()
            tick += 1
            self._on_levels(call.id, dict(self._levels), dict(quality))

    async def _stop(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
            self._reporter = None
        for link in self.links.values():
            with contextlib.suppress(Exception):
                await link.close()
        self.links.clear()
        if self._sfu is not None:
            with contextlib.suppress(Exception):
                await self._sfu.leave()
            self._sfu = None
        for _, speaker in self._speakers.values():
            speaker.close()
        self._speakers.clear()
        if self.media is not None:
            await self.media.close()
            self.media = None
        self._levels.clear()
        self.call = None
