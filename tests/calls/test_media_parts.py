"""The parts of the call media layer on their own, without a connection:
fan-out, SDP checks, ICE settings, sources and their controls."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import aioice.ice
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from av import AudioFrame, VideoFrame

from crab.calls.audio import FRAME_SAMPLES, Chunker, level
from crab.calls.errors import CallDeviceError
from crab.calls.fanout import Fanout
from crab.calls.ice import parse_hosts, rtc_configuration, use_ice_hosts_from_env
from crab.calls.peer import grade
from crab.calls.sdp import MAX_SDP, check_sdp
from crab.calls.sources import Devices, LocalMedia, moving_pattern
from crab.calls.speaker import Speaker
from crab.core.services.turn import IceServer
from tests.helpers.calls import dominant_frequency


async def test_a_slow_subscriber_loses_only_its_own_oldest_items() -> None:
    fanout: Fanout[int] = Fanout(2)
    slow, fast = fanout.subscribe(), fanout.subscribe()
    for item in range(3):
        fanout.push(item)
        assert await fast.get() == item
    assert [slow.get_nowait(), slow.get_nowait()] == [1, 2]
    fanout.close()
    assert await fast.get() is None
    assert fanout.subscribe().get_nowait() is None  # late comers see the end too


def test_ice_hosts_must_be_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_hosts(" 127.0.0.1, ::1 ,") == ["127.0.0.1", "::1"]
    with pytest.raises(ValueError, match="localhost"):
        parse_hosts("localhost")
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1,::1")
    use_ice_hosts_from_env()
    use_ice_hosts_from_env()
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]


def test_rtc_configuration_carries_servers_and_policy() -> None:
    turn = IceServer(("turn:127.0.0.1:3478",), "123:7", "secret")
    config = rtc_configuration([IceServer(("stun:example.org",)), turn], relay_only=True)
    assert config.iceTransportPolicy == RTCIceTransportPolicy.RELAY
    assert config.iceServers is not None
    assert [(s.urls, s.username, s.credential) for s in config.iceServers] == [
        (["stun:example.org"], None, None),
        (["turn:127.0.0.1:3478"], "123:7", "secret"),
    ]
    assert rtc_configuration([], relay_only=False).iceTransportPolicy == RTCIceTransportPolicy.ALL


@pytest.mark.parametrize(
    ("sdp", "says"),
    [
        (None, "must be text"),
        ("x" * (MAX_SDP + 1), "limit"),
        ("hello", "v=0"),
        ("v=0\r\ns=-\r\n", "no media"),
        ("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "unexpected media"),
        ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n", "ICE credentials"),
        ("v=0\r\nm=audio x y z\r\n", "malformed"),
        ("v=0\x01\r\n", "control characters"),
    ],
)
def test_sdp_checks_say_what_is_wrong(sdp: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_sdp(sdp, "offer")


def test_pcm_helpers() -> None:
    chunker = Chunker()
    assert chunker.feed(np.zeros(FRAME_SAMPLES // 2, np.int16)) == []
    chunks = chunker.feed(np.ones(FRAME_SAMPLES * 2, np.int16))
    assert [chunk.size for chunk in chunks] == [FRAME_SAMPLES, FRAME_SAMPLES]
    assert level(np.zeros(10, np.int16)) == 0
    assert level(np.full(10, 32767, np.int16)) == pytest.approx(1, abs=1e-3)


def test_the_test_pattern_moves() -> None:
    first, second = moving_pattern(320, 240, 0), moving_pattern(320, 240, 1)
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    assert not np.array_equal(first, second)


async def test_mute_sends_silence_and_camera_off_sends_black() -> None:
    media = LocalMedia(Devices(mic="sine:1000", camera="testsrc"), video=True, size=(64, 48))
    audio, video = media.audio_track(), media.video_track()
    assert audio is not None and video is not None
    try:
        frame = await asyncio.wait_for(audio.recv(), 2)
        assert isinstance(frame, AudioFrame) and frame.samples == FRAME_SAMPLES
        assert level(frame.to_ndarray()) > 0.1 and media.mic_level > 0.1
        media.set_muted(True)
        frame = await asyncio.wait_for(audio.recv(), 2)
        assert isinstance(frame, AudioFrame)
        assert not frame.to_ndarray().any()

        picture = await asyncio.wait_for(video.recv(), 2)
        assert isinstance(picture, VideoFrame) and (picture.width, picture.height) == (64, 48)
        view = media.self_view()
        assert view is not None and view.shape == (48, 64, 3)
        media.set_camera(False)
        assert not media.camera_on and media.self_view() is None
        picture = await asyncio.wait_for(video.recv(), 2)  # maybe one queued before
        picture = await asyncio.wait_for(video.recv(), 2)
        assert isinstance(picture, VideoFrame)
        assert picture.to_ndarray(format="rgb24").max() < 10
    finally:
        await media.close()
    # The sources ended: so do the tracks.
    for track in (audio, video):
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(track.recv(), 2)


async def test_bad_devices_are_clear_errors() -> None:
    with pytest.raises(CallDeviceError, match="sine:FREQUENCY"):
        LocalMedia(Devices(mic="sine:loud"), video=False)
    with pytest.raises(CallDeviceError, match="does not exist"):
        LocalMedia(Devices(mic="file:/nonexistent.wav"), video=False)
    with pytest.raises(CallDeviceError, match="testsrc"):
        LocalMedia(Devices(mic="none", camera="webcam"), video=True)


async def test_tracks_are_fresh_per_link_and_absent_without_devices() -> None:
    media = LocalMedia(Devices(mic="sine:440", camera="testsrc"), video=True)
    try:
        assert media.audio_track() is not media.audio_track()
        assert media.video_track() is not media.video_track()
    finally:
        await media.close()
    silent = LocalMedia(Devices(mic="none", camera="none"), video=True)
    assert silent.audio_track() is None and silent.video_track() is None
    await silent.close()


def test_a_speaker_of_none_discards() -> None:
    speaker = Speaker("none")
    speaker.play(np.ones(FRAME_SAMPLES, np.int16))
    speaker.close()


def write_tone_wav(path: str, frequency: float, seconds: float) -> None:
    t = np.arange(int(48_000 * seconds)) / 48_000
    samples = (np.sin(2 * np.pi * frequency * t) * 10_000).astype("<i2")
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes(samples.tobytes())


def write_video(path: str, frames: int) -> None:
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(frames):
            picture = VideoFrame.from_ndarray(moving_pattern(160, 120, index), format="rgb24")
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))


async def test_files_stand_in_for_microphone_and_camera(tmp_path: Path) -> None:
    write_tone_wav(f"{tmp_path}/tone.wav", 700, 1.0)
    write_video(f"{tmp_path}/clip.mp4", 15)
    media = LocalMedia(
        Devices(mic=f"file:{tmp_path}/tone.wav", camera=f"file:{tmp_path}/clip.mp4"),
        video=True,
        size=(64, 48),
    )
    audio, video = media.audio_track(), media.video_track()
    assert audio is not None and video is not None
    try:
        frames = [await asyncio.wait_for(audio.recv(), 2) for _ in range(10)]
        pcm = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])  # type: ignore[union-attr]
        assert dominant_frequency(pcm) == pytest.approx(700, abs=50)  # 200 ms: 5 Hz bins
        picture = await asyncio.wait_for(video.recv(), 2)
        assert isinstance(picture, VideoFrame) and (picture.width, picture.height) == (64, 48)
    finally:
        await media.close()


def test_quality_grades() -> None:
    assert grade(None, 0) == "good"
    assert grade(0.05, 0.01) == "good"
    assert grade(0.3, 0.01) == "fair"
    assert grade(0.05, 0.05) == "fair"
    assert grade(0.5, 0) == "poor"
    assert grade(0.05, 0.2) == "poor"
