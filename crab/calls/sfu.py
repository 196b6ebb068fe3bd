"""A participant of a group call through Janus's VideoRoom plugin: crab
signals, Janus forwards the media, so each participant encodes once however
many people watch.

One Janus session per participant. Its first handle publishes our tracks
(VideoRoom participant id = crab user id, so every callback names people by
crab user id); each other publisher gets a handle and an RTCPeerConnection
of its own that only receives (one subscription per publisher, not one
multistream subscriber: adding and removing people then never renegotiates
a connection that is playing). Publishers that appear later are subscribed
to as Janus announces them, and dropped when they unpublish or leave.

States passed to `on_state(user id, state)`: "connecting", "connected",
"failed", "closed" (one RTCPeerConnection each; our own id for what we
publish, and for the Janus session: "failed" when Janus is gone, "closed"
when the room was destroyed), and "left" when a publisher leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from crab.calls.janus import Handle, JanusSession, Jsep, JsonObject, SfuError, janus_id
from crab.core.services.turn import IceServer

__all__ = ["SfuError", "SfuRoom"]

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
CANCEL_AGAIN = 0.5  # seconds before leave() cancels the follower again
ROOM_EXISTS = 427  # JANUS_VIDEOROOM_ERROR_ROOM_EXISTS: someone created it first
MAX_PUBLISHERS = 16  # per room: beyond the mesh's 4, with room to spare
MAX_DISPLAY = 128
LEVEL_EVERY = 5  # audio frames (20 ms each) per level report: ~10 a second


@dataclass
class _Subscription:
    """What we receive from one other participant."""

    user_id: int
    handle: Handle | None = None
    connection: RTCPeerConnection | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)


def _configuration(servers: Sequence[IceServer], relay_only: bool) -> RTCConfiguration:
    ice = [
        RTCIceServer(
            urls=list(server.urls),
            username=server.username or None,
            credential=server.credential or None,
        )
        for server in servers
    ]
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    # Janus bundles every stream on one transport: gather for one, not one per track.
    return RTCConfiguration(
        iceServers=ice, iceTransportPolicy=policy, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )


def _publisher_ids(value: object, own_id: int) -> list[int]:
    """The other publishers in a VideoRoom `publishers` list."""
    if not isinstance(value, list) or len(value) > MAX_PUBLISHERS * 4:
        raise SfuError("Janus sent a publishers list that is not a short list")
    ids = []
    for publisher in value:
        if not isinstance(publisher, dict):
            raise SfuError("Janus sent a publisher that is not an object")
        user_id = janus_id(publisher.get("id"), "a publisher id")
        if user_id != own_id:
            ids.append(user_id)
    return ids


async def _apply(connection: RTCPeerConnection, jsep: Jsep) -> None:
    """Janus's SDP, which aiortc may find it cannot use."""
    if "\nm=" not in jsep.sdp:
        raise SfuError(f"Janus sent an SDP {jsep.type} with no media in it")
    try:
        await connection.setRemoteDescription(RTCSessionDescription(jsep.sdp, jsep.type))
    except (ValueError, KeyError, IndexError, InvalidAccessError, InvalidStateError) as error:
        raise SfuError(f"Janus sent an SDP {jsep.type} we cannot use: {error}") from error


async def _close(connection: RTCPeerConnection) -> None:
    """Closes without the "closed" state change: the caller reports why."""
    connection.remove_all_listeners("connectionstatechange")
    await connection.close()


def audio_level(frame: AudioFrame) -> float:
    """RMS of one frame, 0..1 (aiortc decodes to 16-bit samples)."""
    samples = frame.to_ndarray().astype(np.float32)
    if frame.format.name.startswith("s16"):
        samples /= 32768.0
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


class SfuRoom:
    """Our place in one VideoRoom. `join` once, `leave` at the end (also
    after a failed join: it is idempotent)."""

    def __init__(
        self,
        url: str,
        room: int,
        pin: str,
        user_id: int,
        display: str,
        audio: MediaStreamTrack | None,
        video: MediaStreamTrack | None,
        servers: Sequence[IceServer],
        relay_only: bool,
        on_frame: Callable[[int, np.ndarray], None],
        on_level: Callable[[int, float], None],
        on_state: Callable[[int, str], None],
        on_audio: Callable[[int, AudioFrame], None] | None = None,
        token: str = "",
    ) -> None:
        self.url = url
        self.room = janus_id(room, "room")
        self.user_id = janus_id(user_id, "user id")
        self.pin = pin
        self.display = display[:MAX_DISPLAY]
        self.audio = audio
        self.video = video
        self.configuration = _configuration(servers, relay_only)
        self.on_frame = on_frame
        self.on_level = on_level
        self.on_state = on_state
        self.on_audio = on_audio  # received audio for the speaker
        self.token = token  # when Janus checks signed tokens (token_auth_secret)
        self._session: JanusSession | None = None
        self._publisher: Handle | None = None
        self._published: RTCPeerConnection | None = None
        self._private_id: int | None = None
        self._subscriptions: dict[int, _Subscription] = {}
        self._changes: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._follower: asyncio.Task[None] | None = None
        self._left = False

    @property
    def subscribed(self) -> frozenset[int]:
        """Crab user ids of the publishers we receive."""
        return frozenset(self._subscriptions)

    async def join(self) -> None:
        """Creates the room if missing (with the pin), joins it as a
        publisher, publishes our tracks, subscribes to everyone already
        publishing, then follows arrivals and departures until `leave`.
        Raises SfuError (and leaves) when any step fails."""
        if self._session is not None or self._left:
            raise SfuError("this SfuRoom has already joined (or left): make a new one")
        try:
            self._session = await JanusSession.create(self.url, self.token)
            self._session.on_failure = self._session_failed
            self._publisher = await self._session.attach(PLUGIN)
            self._publisher.on_event = self._room_event
            await self._create_room(self._publisher)
            others = await self._join_as_publisher(self._publisher)
            if self.audio is not None or self.video is not None:
                await self._publish(self._publisher)
            # Each subscription waits on Janus and on ICE gathering: all at once.
            await asyncio.gather(*(self._try_subscribe(user_id) for user_id in others))
            self._follower = asyncio.create_task(self._follow(), name=f"sfu-room-{self.room}")
        except BaseException:
            await self.leave()
            raise

    async def leave(self) -> None:
        """Hangs up every connection and destroys the Janus session (Janus
        then tells the others we left). Idempotent, bounded."""
        if self._left:
            return
        self._left = True
        if self._follower is not None:
            follower = self._follower
            while not follower.done():
                # A cancel that lands as a step inside completes can be lost
                # (3.11's wait_for, aiortc's close): then it waits on the
                # queue for good, and leave() with it. Ask again.
                follower.cancel()
                await asyncio.wait({follower}, timeout=CANCEL_AGAIN)
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        for user_id in list(self._subscriptions):
            await self._unsubscribe(user_id, "closed")
        if self._published is not None:
            await _close(self._published)
            self.on_state(self.user_id, "closed")
        if self._session is not None:
            await self._session.destroy()  # hangs up and detaches our handles on Janus

    # Joining

    async def _create_room(self, handle: Handle) -> None:
        body: JsonObject = {
            "request": "create",
            "room": self.room,
            "pin": self.pin,
            "is_private": True,  # not listed to other Janus users
            "publishers": MAX_PUBLISHERS,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "permanent": False,
        }
        try:
            await handle.request(body)
        except SfuError as error:
            if error.code != ROOM_EXISTS:
                raise

    async def _join_as_publisher(self, handle: Handle) -> list[int]:
        event = await handle.send(
            {
                "request": "join",
                "ptype": "publisher",
                "room": self.room,
                "pin": self.pin,
                "id": self.user_id,
                "display": self.display,
            }
        )
        if event.data.get("videoroom") != "joined":
            raise SfuError(f"Janus answered {event.data.get('videoroom')!r} to join")
        self._private_id = janus_id(event.data.get("private_id"), "a private id")
        return _publisher_ids(event.data.get("publishers", []), self.user_id)

    async def _publish(self, handle: Handle) -> None:
        connection = RTCPeerConnection(self.configuration)
        self._published = connection
        self._watch(connection, self.user_id)
        for track in (self.audio, self.video):
            if track is not None:
                connection.addTransceiver(track, direction="sendonly")
        await connection.setLocalDescription(await connection.createOffer())
        offer = connection.localDescription
        event = await handle.send({"request": "publish"}, Jsep("offer", offer.sdp))
        if event.jsep is None or event.jsep.type != "answer":
            raise SfuError("Janus accepted our media without an SDP answer")
        await _apply(connection, event.jsep)

    # Following the room

    def _room_event(self, kind: str, message: JsonObject) -> None:
        """Events on our publisher handle: who publishes, who leaves."""
        if kind != "event":
            return
        plugindata = message.get("plugindata")
        data = plugindata.get("data") if isinstance(plugindata, dict) else None
        if not isinstance(data, dict):
            raise SfuError("Janus sent a room event without data")
        if data.get("videoroom") == "destroyed":  # the call is over for everyone
            self.on_state(self.user_id, "closed")
            return
        if "publishers" in data:
            for user_id in _publisher_ids(data["publishers"], self.user_id):
                self._changes.put_nowait(("publishing", user_id))
        for key in ("unpublished", "leaving", "kicked"):
            value = data.get(key)
            if value is not None and value != "ok":
                self._changes.put_nowait(("left", janus_id(value, f"an id that {key}")))

    async def _follow(self) -> None:
        """Applies arrivals and departures one at a time, in order."""
        while True:
            change, user_id = await self._changes.get()
            if change == "publishing" and user_id not in self._subscriptions:
                await self._try_subscribe(user_id)
            elif change == "left" and user_id in self._subscriptions:
                await self._unsubscribe(user_id, "left")

    async def _try_subscribe(self, user_id: int) -> None:
        """One publisher we cannot receive does not end the call: it shows
        as "failed" for that person, and the others go on."""
        try:
            await self._subscribe(user_id)
        except SfuError as error:
            log.warning("group call: cannot receive user %s: %s", user_id, error)
            if user_id in self._subscriptions:
                await self._unsubscribe(user_id, "failed")

    def _session_failed(self, error: SfuError) -> None:
        log.warning("group call: Janus session lost: %s", error)
        self.on_state(self.user_id, "failed")

    # Receiving

    async def _subscribe(self, user_id: int) -> None:
        assert self._session is not None
        subscription = _Subscription(user_id)
        self._subscriptions[user_id] = subscription
        self.on_state(user_id, "connecting")
        handle = await self._session.attach(PLUGIN)
        subscription.handle = handle
        event = await handle.send(
            {
                "request": "join",
                "ptype": "subscriber",
                "room": self.room,
                "pin": self.pin,
                "private_id": self._private_id,
                "streams": [{"feed": user_id}],
            }
        )
        if event.data.get("videoroom") != "attached" or event.jsep is None:
            raise SfuError(f"Janus answered {event.data.get('videoroom')!r} to subscribe")
        if event.jsep.type != "offer":
            raise SfuError("Janus sent a subscription without an SDP offer")
        connection = RTCPeerConnection(self.configuration)
        subscription.connection = connection
        self._watch(connection, user_id)

        @connection.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = self._read_video if track.kind == "video" else self._read_audio
            subscription.readers.append(asyncio.create_task(reader(user_id, track)))

        await _apply(connection, event.jsep)
        await connection.setLocalDescription(await connection.createAnswer())
        answer = connection.localDescription
        started = await handle.send({"request": "start"}, Jsep("answer", answer.sdp))
        if started.data.get("started") != "ok":
            raise SfuError(f"Janus did not start the subscription to {user_id}")

    async def _unsubscribe(self, user_id: int, state: str) -> None:
        subscription = self._subscriptions.pop(user_id)
        for reader in subscription.readers:
            reader.cancel()
        if subscription.connection is not None:
            await _close(subscription.connection)
        if subscription.handle is not None and self._session is not None:
            self._session.forget(subscription.handle)
            if state != "closed":  # on leave() the session's destroy detaches them all at once
                with contextlib.suppress(SfuError):
                    await subscription.handle.detach()
        self.on_state(user_id, state)

    def _watch(self, connection: RTCPeerConnection, user_id: int) -> None:
        @connection.on("connectionstatechange")
        def changed() -> None:
            state = connection.connectionState
            if state in ("connecting", "connected", "failed", "closed"):
                self.on_state(user_id, state)

    async def _read_video(self, user_id: int, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.on_frame(user_id, frame.to_ndarray(format="rgb24"))

    async def _read_audio(self, user_id: int, track: MediaStreamTrack) -> None:
        levels: list[float] = []
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, AudioFrame):
                    continue
                if self.on_audio is not None:
                    self.on_audio(user_id, frame)
                levels.append(audio_level(frame))
                if len(levels) == LEVEL_EVERY:
                    self.on_level(user_id, max(levels))
                    levels.clear()
