"""The device path through a private PulseAudio: a tone played into a fake
microphone (a null sink's monitor) goes caller mic -> PortAudio -> PeerLink
-> PeerLink -> PortAudio -> callee speaker (another null sink), and is found
by FFT in a recording of that speaker.

PortAudio (ALSA) sees PulseAudio only as the devices "pulse" and "default";
crab's "pulse:NAME" picks the source or sink through PULSE_SOURCE /
PULSE_SINK, which libpulse reads when a stream opens, so both ends work in
one process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aioice.ice
import numpy as np
import pytest

from crab.calls import portaudio
from crab.calls.audio import RATE
from crab.calls.errors import CallDeviceError
from crab.calls.ice import use_ice_hosts_from_env
from crab.calls.sources import Devices, LocalMedia, list_devices
from crab.core.app import Crab
from crab.tui.config import ChatConfig
from tests.helpers.calls import Recorder, connect, dominant_frequency, make_link, tone_of
from tests.helpers.pulse import Pulse, pulse
from tests.helpers.services import missing_service, which
from tests.integration.test_app_headless import person
from tests.integration.test_calls_headless import level_of, meet

__all__ = ["pulse"]

pytestmark = pytest.mark.slow

TONE = 523


@pytest.fixture
async def portaudio_on_pulse(pulse: Pulse, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pulse]:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    use_ice_hosts_from_env()
    try:
        portaudio.rescan()  # PortAudio may have looked before this server existed
    except CallDeviceError as error:
        missing_service(str(error))
    yield pulse
    portaudio.rescan()  # forget this server's devices


async def test_a_tone_goes_from_one_fake_microphone_to_the_other_fake_speaker(
    portaudio_on_pulse: Pulse, tmp_path: pytest.TempPathFactory
) -> None:
    server = portaudio_on_pulse
    if which("sox") is None:
        missing_service("sox is not installed (apt-get install sox)")
    assert "mic: pulse" in list_devices()
    tone = f"{tmp_path}/tone.wav"
    sox = await asyncio.create_subprocess_exec(
        "sox", "-n", "-r", str(RATE), "-c", "1", tone, "synth", "30", "sine", str(TONE)
    )  # fmt: skip
    assert await sox.wait() == 0
    env = {**os.environ, **server.env}
    player = await asyncio.create_subprocess_exec("paplay", "--device=mic", tone, env=env)
    # What the callee's speaker plays, read as it comes (a short latency,
    # or parec holds seconds back).
    speaker_out = await asyncio.create_subprocess_exec(
        "parec", "--device=spk.monitor", "--format=s16le", f"--rate={RATE}", "--channels=1",
        "--latency-msec=20",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    caller_media = LocalMedia(Devices(mic="pulse:mic.monitor"), video=False)
    callee_media = LocalMedia(Devices(mic="none"), video=False)
    at_caller, at_callee = Recorder(), Recorder()
    caller = make_link(2, caller_media, at_caller)
    callee = make_link(1, callee_media, at_callee, speaker="pulse:spk")
    try:
        await connect(caller, callee)
        await at_callee.until("2 s of audio", lambda: at_callee.samples() >= 2 * RATE, 10)
        # The microphone half: what the callee received is the tone.
        assert tone_of(at_callee, skip=0.5) == pytest.approx(TONE, abs=5)
        # The speaker half: what came out of the callee's speaker is the tone.
        assert speaker_out.stdout is not None
        heard = await asyncio.wait_for(speaker_out.stdout.readexactly(3 * RATE * 2), 10)
    finally:
        await caller.close()
        await callee.close()
        await caller_media.close()
        await callee_media.close()
        for process in (player, speaker_out):
            if process.returncode is None:
                process.terminate()
            await process.wait()
    last = np.frombuffer(heard, np.int16)[-RATE:]
    assert np.abs(last).max() > 1000, "the speaker stayed silent"
    assert dominant_frequency(last) == pytest.approx(TONE, abs=5)


async def test_a_device_that_is_not_there_is_a_clear_error(portaudio_on_pulse: Pulse) -> None:
    with pytest.raises(CallDeviceError, match=r"no-such-mic.*--list-devices"):
        LocalMedia(Devices(mic="no-such-mic"), video=False)
    with pytest.raises(CallDeviceError, match="no-such-speaker"):
        make_link(
            1, LocalMedia(Devices(mic="none"), video=False), Recorder(), speaker="no-such-speaker"
        )


async def test_two_whole_clients_talk_through_the_fake_devices(
    portaudio_on_pulse: Pulse, crab: Crab, tmp_path: Path
) -> None:
    """The same path through `crab chat` itself: devices named in its
    config, /call and /answer, the tone out of the callee's fake speaker."""
    server = portaudio_on_pulse
    if which("sox") is None:
        missing_service("sox is not installed (apt-get install sox)")
    tone = str(tmp_path / "tone.wav")
    sox = await asyncio.create_subprocess_exec(
        "sox", "-n", "-r", str(RATE), "-c", "1", tone, "synth", "60", "sine", str(TONE)
    )  # fmt: skip
    assert await sox.wait() == 0
    env = {**os.environ, **server.env}
    player = await asyncio.create_subprocess_exec("paplay", "--device=mic", tone, env=env)
    speaker_out = await asyncio.create_subprocess_exec(
        "parec", "--device=spk.monitor", "--format=s16le", f"--rate={RATE}", "--channels=1",
        "--latency-msec=20",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        caller = ChatConfig(mic="pulse:mic.monitor", speaker="none")
        callee = ChatConfig(mic="none", speaker="pulse:spk")
        async with (
            person(crab, tmp_path / "alice", config=caller) as alice,
            person(crab, tmp_path / "bob", config=callee) as bob,
        ):
            await meet(alice, bob)
            assert alice.state.me is not None
            await alice.say("/call")
            await bob.until(lambda s: s.ringing_for_me() is not None)
            await bob.say("/answer")
            await bob.until(lambda s: level_of(s, alice.state.me.id) > 0.01, 20)  # type: ignore[union-attr]
            assert speaker_out.stdout is not None
            # Past the first second (the speaker's start), a second of what it played.
            heard = await asyncio.wait_for(speaker_out.stdout.readexactly(3 * RATE * 2), 15)
            await bob.say("/hangup")
            await alice.until(lambda s: s.my_call is None)
    finally:
        for process in (player, speaker_out):
            if process.returncode is None:
                process.terminate()
            await process.wait()
    last = np.frombuffer(heard, np.int16)[-RATE:]
    assert np.abs(last).max() > 1000, "the speaker stayed silent"
    assert dominant_frequency(last) == pytest.approx(TONE, abs=5)
