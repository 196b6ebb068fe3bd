"""One link of a call: the WebRTC connection between this client and one
other participant, with its media. The call engine makes one PeerLink per
other person and carries offer and answer over crab's session stream; all
candidates are in the SDP (aiortc gathers them before it returns one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.stats import RTCRemoteInboundRtpStreamStats
from av import AudioFrame, VideoFrame

from crab.calls.audio import RATE, Pcm, ToPcm, level
from crab.calls.ice import rtc_configuration
from crab.calls.sdp import MAX_SDP, check_sdp
from crab.calls.sources import LocalMedia
from crab.calls.speaker import Speaker
from crab.calls.video import Rgb, to_rgb
from crab.core.services.turn import IceServer

__all__ = ["MAX_SDP", "PeerLink"]

log = logging.getLogger(__name__)

LEVEL_SAMPLES = RATE // 10  # one level report per 100 ms of audio

# aioice leaves a link with no candidate pair "new" for ever; past this a
# link that has not connected is "failed".
CONNECT_TIMEOUT = 15.0

# Connection quality from the peer's receiver reports: round trip and loss.
GOOD = (0.150, 0.02)
FAIR = (0.400, 0.10)


def grade(rtt: float | None, loss: float) -> str:
    """Quality for a round trip (seconds; None: not known yet) and a lost
    fraction (0..1): "good", "fair" or "poor"."""
    rtt = rtt or 0.0
    if rtt <= GOOD[0] and loss <= GOOD[1]:
        return "good"
    if rtt <= FAIR[0] and loss <= FAIR[1]:
        return "fair"
    return "poor"


class PeerLink:
    """The caller side calls offer() then accept(answer); the other side
    answer(offer). Received pictures and levels go to the callbacks, sound
    to the speaker; on_state says "connecting", "connected", "failed" (no
    candidate on a side, or not connected within CONNECT_TIMEOUT) and
    finally "closed"."""

    def __init__(
        self,
        user_id: int,
        media: LocalMedia,
        servers: Sequence[IceServer],
        relay_only: bool,
        on_frame: Callable[[int, Rgb], None],
        on_level: Callable[[int, float], None],
        on_state: Callable[[int, str], None],
        speaker: str = "default",
        on_audio: Callable[[int, Pcm], None] | None = None,
    ) -> None:
        """on_audio: every received 48 kHz mono PCM run, beside the speaker
        (for tests and recording)."""
        self.user_id = user_id
        self._media = media
        self._on_frame = on_frame
        self._on_level = on_level
        self._on_state = on_state
        self._on_audio = on_audio
        self._speaker = Speaker(speaker)
        self._pc = RTCPeerConnection(rtc_configuration(servers, relay_only))
        self._pc.on("track", self._track_arrived)
        self._pc.on("connectionstatechange", self._connection_changed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent: list[MediaStreamTrack] = []
        self.state = ""
        # Monotonic times, for the figures: when negotiation started, when
        # the link connected, when the first picture arrived.
        self.started_at = 0.0
        self.connected_at: float | None = None
        self.first_frame_at: float | None = None

    # -- negotiation

    async def offer(self) -> str:
        """The SDP of a complete offer (every candidate gathered)."""
        self._begin()
        for kind, track in self._local_tracks():
            if track is None:
                self._pc.addTransceiver(kind, direction="recvonly")
            else:
                self._send(track)
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return self._local_sdp()

    async def answer(self, offer: str) -> str:
        """The SDP of a complete answer to the other side's offer; ValueError
        for an offer too big, malformed or not acceptable."""
        check_sdp(offer, "offer")
        self._check_fresh()
        await self._set_remote(offer, "offer")
        self._begin()
        offered = {transceiver.kind for transceiver in self._pc.getTransceivers()}
        for kind, track in self._local_tracks():
            # A kind the offer left out cannot be sent in this answer.
            if track is not None and kind in offered:
                self._send(track)
            elif track is not None:
                track.stop()
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        self._fail_without_candidates(offer)
        return self._local_sdp()

    async def accept(self, answer: str) -> None:
        """The other side's answer to our offer; ValueError as for answer()."""
        check_sdp(answer, "answer")
        await self._set_remote(answer, "answer")
        self._fail_without_candidates(answer)

    @property
    def candidates(self) -> list[str]:
        """The ICE candidates this side offered (its SDP's a=candidate lines):
        with relay_only, relays alone."""
        description = self._pc.localDescription
        sdp = description.sdp if description is not None else ""
        return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]

    def _check_fresh(self) -> None:
        if self.state:
            raise RuntimeError(f"link to {self.user_id} is already {self.state}")

    def _begin(self) -> None:
        self._check_fresh()
        self.started_at = time.monotonic()
        self._set_state("connecting")
        self._spawn(self._fail_unless_connected())

    def _local_sdp(self) -> str:
        sdp: str = self._pc.localDescription.sdp
        self._fail_without_candidates(sdp)
        return sdp

    def _fail_without_candidates(self, sdp: str) -> None:
        """No candidate on one side (relay only and TURN refused us, or no
        network): no pair can ever form, say so now."""
        if "\na=candidate:" not in sdp:
            self._set_state("failed")

    async def _fail_unless_connected(self) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT)
        if self.state == "connecting":
            self._set_state("failed")

    def _local_tracks(self) -> list[tuple[str, MediaStreamTrack | None]]:
        tracks: list[tuple[str, MediaStreamTrack | None]] = [("audio", self._media.audio_track())]
        if self._media.video:
            tracks.append(("video", self._media.video_track()))
        return tracks

    def _send(self, track: MediaStreamTrack) -> None:
        self._sent.append(track)
        self._pc.addTrack(track)

    async def _set_remote(self, sdp: str, kind: str) -> None:
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except (ValueError, InvalidStateError, InvalidAccessError, OperationError) as error:
            raise ValueError(f"{kind} refused: {error}") from None

    # -- state

    def _connection_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
        if state in ("connected", "failed", "closed"):
            self._set_state(state)

    def _set_state(self, state: str) -> None:
        if state != self.state and self.state != "closed":
            self.state = state
            self._on_state(self.user_id, state)

    async def quality(self) -> str:
        """The link's quality from the other side's receiver reports (round
        trip and loss): "good", "fair" or "poor"; "" until there is one."""
        if self.state != "connected":
            return ""
        reports = [
            stats
            for stats in (await self._pc.getStats()).values()
            if isinstance(stats, RTCRemoteInboundRtpStreamStats)
        ]
        if not reports:
            return ""
        # aiortc has no round trip until a report answers one of ours.
        rtts = [report.roundTripTime for report in reports if report.roundTripTime is not None]
        # RTCP carries the lost fraction in 1/256ths.
        loss = max(report.fractionLost for report in reports) / 256
        return grade(max(rtts) if rtts else None, loss)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pc.close()
        for track in self._sent:
            track.stop()
        self._speaker.close()
        self._set_state("closed")

    # -- receiving

    def _track_arrived(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._spawn(self._receive_video(track))
        elif track.kind == "audio":
            self._spawn(self._receive_audio(track))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call link to %s: receiving stopped", self.user_id, exc_info=task.exception())

    async def _receive_video(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, VideoFrame)
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
            self._on_frame(self.user_id, to_rgb(frame))

    async def _receive_audio(self, track: MediaStreamTrack) -> None:
        to_pcm = ToPcm()
        window: list[Pcm] = []
        held = 0
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            pcm = to_pcm(frame)
            self._speaker.play(pcm)
            if self._on_audio is not None:
                self._on_audio(self.user_id, pcm)
            window.append(pcm)
            held += pcm.size
            if held >= LEVEL_SAMPLES:
                self._on_level(self.user_id, level(np.concatenate(window)))
                window, held = [], 0
