"""What this client sends in a call: the microphone and the camera, or
something standing in for them (a tone, a file, a moving test pattern).

One LocalMedia per call owns the sources; each peer connection asks it for
a fresh pair of tracks (audio_track, video_track), fed from the same
source through its own small queue (see fanout.py)."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import os
import time
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from crab.calls import portaudio
from crab.calls.audio import FRAME_SAMPLES, RATE, Chunker, Pcm, ToPcm, level, to_frame
from crab.calls.errors import LIST_HINT, CallDeviceError
from crab.calls.fanout import Fanout
from crab.calls.video import Rgb, Yuv, rgb_to_yuv, to_yuv, yuv_to_rgb

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
AUDIO_DEPTH = 10  # 200 ms of 20 ms frames before a slow track drops the oldest
SINE_AMPLITUDE = 0.3


@dataclass(frozen=True)
class Devices:
    """mic:     "default" | a PortAudio device name | "pulse:SOURCE" | "sine:FREQ"
             | "file:PATH" | "none"
    speaker: "default" | a PortAudio device name | "pulse:SINK" | "none"
    camera:  "none" | "testsrc" | "file:PATH" | a V4L2 path like /dev/video0"""

    mic: str = "default"
    speaker: str = "default"
    camera: str = "none"


def list_devices() -> list[str]:
    """Lines for `crab chat --list-devices`."""
    lines = ['mic: "sine:440", "file:PATH" or "none" stand in for a microphone']
    try:
        sound = [f"mic: {name}" for name in portaudio.device_names("input")]
        sound += [f"speaker: {name}" for name in portaudio.device_names("output")]
    except CallDeviceError as error:
        sound = [f"(no sound devices: {error})"]
    lines += sound or ["(PortAudio finds no microphone or speaker)"]
    lines += [f"camera: {path}" for path in _video_devices()]
    lines.append('camera: "testsrc" or "file:PATH" stand in for a camera')
    return lines


def _video_devices() -> list[str]:
    try:
        names = sorted(name for name in os.listdir("/dev") if name.startswith("video"))
    except OSError:
        return []
    return [f"/dev/{name}" for name in names]


class _PcmTrack(MediaStreamTrack):
    """One peer connection's audio: 20 ms frames from the shared source,
    silence while muted."""

    kind = "audio"

    def __init__(self, media: LocalMedia, source: Fanout[Pcm]) -> None:
        super().__init__()
        self._media = media
        self._source = source
        self._queue = source.subscribe()
        self._pts = 0

    async def recv(self) -> AudioFrame:
        pcm = await self._queue.get()
        if pcm is None:
            self.stop()
            raise MediaStreamError
        if self._media.muted:
            pcm = np.zeros(FRAME_SAMPLES, np.int16)
        frame = to_frame(pcm, self._pts)
        self._pts += pcm.size
        return frame

    def stop(self) -> None:
        self._source.unsubscribe(self._queue)
        super().stop()


class _FrameTrack(MediaStreamTrack):
    """One peer connection's video: the newest frame of the shared source.
    Each track gets its own VideoFrame, as aiortc's encoders write to it."""

    kind = "video"

    def __init__(self, source: Fanout[Yuv]) -> None:
        super().__init__()
        self._source = source
        self._queue = source.subscribe()
        self._start = time.monotonic()

    async def recv(self) -> VideoFrame:
        yuv = await self._queue.get()
        if yuv is None:
            self.stop()
            raise MediaStreamError
        frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = int((time.monotonic() - self._start) * VIDEO_CLOCK)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        self._source.unsubscribe(self._queue)
        super().stop()


def moving_pattern(width: int, height: int, index: int) -> Rgb:
    """Colour bars sliding sideways with a white square crossing them, so a
    viewer sees motion and a test sees frames differ."""
    columns = np.arange(width)
    bars = np.array(
        [[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
         [255, 0, 255], [255, 0, 0], [0, 0, 255], [16, 16, 16]],
        np.uint8,
    )  # fmt: skip
    shift = (index * 4) % width
    row = bars[((columns + shift) % width) * len(bars) // width]
    image = np.ascontiguousarray(np.broadcast_to(row, (height, width, 3)))
    side = max(2, height // 6)
    x = (index * 6) % max(1, width - side)
    y = (height - side) // 2
    image[y : y + side, x : x + side] = 255
    return image


def _black(width: int, height: int) -> Yuv:
    yuv = np.full((height * 3 // 2, width), 128, np.uint8)
    yuv[:height] = 16
    return yuv


class LocalMedia:
    """The sources of one call. Create it inside the running event loop; it
    starts capturing at once (so the self view works before anyone answers)."""

    def __init__(
        self,
        devices: Devices,
        video: bool,
        size: tuple[int, int] = (320, 240),
        fps: int = 15,
    ) -> None:
        self.devices = devices
        self.video = video
        self.size = size
        self.fps = fps
        self._muted = False
        self._camera_on = True
        self.mic_level = 0.0
        self._loop = asyncio.get_running_loop()
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Any] = []
        self._audio: Fanout[Pcm] | None = None
        self._video: Fanout[Yuv] | None = None
        self._latest: Yuv | None = None
        self._latest_rgb: Rgb | None = None
        self._black = _black(*size)
        try:
            self._open_mic(devices.mic)
            if video:
                self._open_camera(devices.camera)
        except BaseException:
            self._stop_sources()
            raise

    # -- controls

    @property
    def muted(self) -> bool:
        return self._muted

    def set_muted(self, muted: bool) -> None:
        self._muted = muted

    @property
    def camera_on(self) -> bool:
        return self._camera_on

    def set_camera(self, on: bool) -> None:
        self._camera_on = on

    # -- tracks

    def audio_track(self) -> MediaStreamTrack | None:
        """A fresh track for one peer connection, None without a microphone."""
        return None if self._audio is None else _PcmTrack(self, self._audio)

    def video_track(self) -> MediaStreamTrack | None:
        """A fresh track for one peer connection, None without a camera or
        in an audio call."""
        return None if self._video is None else _FrameTrack(self._video)

    def self_view(self) -> Rgb | None:
        """The newest local frame (RGB, height x width x 3), None while the
        camera is off or before the first frame."""
        if self._latest is None or not self._camera_on:
            return None
        if self._latest_rgb is None:
            self._latest_rgb = yuv_to_rgb(self._latest)
        return self._latest_rgb

    async def close(self) -> None:
        tasks = list(self._tasks)
        self._stop_sources()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stop_sources(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()
        self._closers.clear()
        for fanout in (self._audio, self._video):
            if fanout is not None:
                fanout.close()

    # -- microphone

    def _push_pcm(self, pcm: Pcm) -> None:
        assert self._audio is not None
        self.mic_level = 0.0 if self._muted else level(pcm)
        self._audio.push(pcm)

    def _open_mic(self, mic: str) -> None:
        if mic == "none":
            return
        self._audio = Fanout(AUDIO_DEPTH)
        if mic.startswith("sine:"):
            try:
                frequency = float(mic.removeprefix("sine:"))
            except ValueError:
                raise CallDeviceError(
                    f"mic {mic!r}: expected sine:FREQUENCY, e.g. sine:440"
                ) from None
            if not 0 < frequency < RATE / 2:
                raise CallDeviceError(
                    f"mic {mic!r}: the frequency must be within 0..{RATE // 2} Hz"
                )
            self._spawn(self._sine(frequency))
        elif mic.startswith("file:"):
            player = _player(mic.removeprefix("file:"), "mic", loop=True)
            if player.audio is None:
                raise CallDeviceError(f"mic {mic!r}: the file has no audio")
            self._closers.append(player.audio.stop)
            self._spawn(self._file_audio(player.audio))
        else:
            self._open_sound_device(mic)

    async def _sine(self, frequency: float) -> None:
        step = 2 * np.pi * frequency / RATE
        phase = 0.0
        start = self._loop.time()
        sent = 0
        while True:
            phases = phase + step * np.arange(FRAME_SAMPLES)
            phase = float((phase + step * FRAME_SAMPLES) % (2 * np.pi))
            self._push_pcm((np.sin(phases) * SINE_AMPLITUDE * 32767).astype(np.int16))
            sent += FRAME_SAMPLES
            # Paced on the clock like a sound card, not by the consumer.
            await asyncio.sleep(max(0.0, start + sent / RATE - self._loop.time()))

    async def _file_audio(self, track: MediaStreamTrack) -> None:
        to_pcm, chunker = ToPcm(), Chunker()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, AudioFrame)
            for pcm in chunker.feed(to_pcm(frame)):
                self._push_pcm(pcm)

    def _open_sound_device(self, name: str) -> None:
        sd = portaudio.sounddevice()
        index = portaudio.device_index(name, "input")

        def captured(data: Any, frames: int, _time: Any, _status: Any) -> None:
            pcm = np.frombuffer(data, np.int16).copy()
            self._loop.call_soon_threadsafe(self._push_pcm, pcm)

        try:
            stream = sd.RawInputStream(
                device=index,
                samplerate=RATE,
                channels=1,
                dtype="int16",
                blocksize=FRAME_SAMPLES,
                callback=captured,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as error:
            raise CallDeviceError(
                f"microphone {name!r} cannot be opened ({error}); {LIST_HINT}"
            ) from None
        self._closers.append(stream.close)

    # -- camera

    def _push_frame(self, yuv: Yuv) -> None:
        assert self._video is not None
        if self._camera_on:
            self._latest, self._latest_rgb = yuv, None
        else:
            yuv = self._black
        self._video.push(yuv)

    def _open_camera(self, camera: str) -> None:
        if camera == "none":
            return
        self._video = Fanout(1)
        width, height = self.size
        if camera == "testsrc":
            self._spawn(self._test_source())
            return
        if camera.startswith("file:"):
            player = _player(camera.removeprefix("file:"), "camera", loop=True)
        elif camera.startswith("/dev/"):
            player = _player(
                camera,
                "camera",
                format="v4l2",
                options={"video_size": f"{width}x{height}", "framerate": str(self.fps)},
            )
        else:
            raise CallDeviceError(
                f'camera {camera!r}: expected "none", "testsrc", "file:PATH" or a path like /dev/video0'
            )
        if player.video is None:
            raise CallDeviceError(f"camera {camera!r} gives no video")
        self._closers.append(player.video.stop)
        self._spawn(self._player_video(player.video))

    async def _test_source(self) -> None:
        width, height = self.size
        start = self._loop.time()
        index = 0
        while True:
            self._push_frame(rgb_to_yuv(moving_pattern(width, height, index)))
            index += 1
            await asyncio.sleep(max(0.0, start + index / self.fps - self._loop.time()))

    async def _player_video(self, track: MediaStreamTrack) -> None:
        width, height = self.size
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, VideoFrame)
            self._push_frame(to_yuv(frame, width, height))

    def _spawn(self, work: Any) -> None:
        self._tasks.append(self._loop.create_task(work))


def _player(path: str, role: str, **kwargs: Any) -> MediaPlayer:
    if not path.startswith("/dev/") and not os.path.isfile(path):
        raise CallDeviceError(f"{role} file {path!r} does not exist")
    try:
        return MediaPlayer(path, **kwargs)
    except (av.FFmpegError, OSError, ValueError) as error:
        raise CallDeviceError(f"{role} {path!r} cannot be opened ({error}); {LIST_HINT}") from None
