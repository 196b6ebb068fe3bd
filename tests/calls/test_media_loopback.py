"""Two PeerLinks in one process over real sockets on 127.0.0.1 with
synthetic media: the picture and the tone each side receives are the other
side's, mute silences, close closes, garbage SDP is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aioice.ice
import pytest

from crab.calls.ice import use_ice_hosts_from_env
from crab.calls.peer import MAX_SDP, PeerLink
from crab.calls.sources import Devices, LocalMedia
from tests.helpers.calls import Recorder, connect, make_link, tone_of

FPS = 15
SIZE = (320, 240)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Restored after the test: use_ice_hosts_from_env replaces this.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    monkeypatch.setenv("CRAB_ICE_HOSTS", "127.0.0.1")
    use_ice_hosts_from_env()


@pytest.fixture
async def medias(loopback: None) -> AsyncIterator[tuple[LocalMedia, LocalMedia]]:
    alice = LocalMedia(Devices(mic="sine:440", speaker="none", camera="testsrc"), True, SIZE, FPS)
    bob = LocalMedia(Devices(mic="sine:660", speaker="none", camera="testsrc"), True, SIZE, FPS)
    try:
        yield alice, bob
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.slow  # seconds of media
async def test_a_call_carries_each_side_picture_and_tone(
    medias: tuple[LocalMedia, LocalMedia],
) -> None:
    alice_media, bob_media = medias
    at_alice, at_bob = Recorder(), Recorder()  # what each one receives
    to_bob = make_link(2, alice_media, at_alice)  # alice's link to bob
    to_alice = make_link(1, bob_media, at_bob)
    try:
        rang = time.monotonic()
        await connect(to_bob, to_alice)
        for recorder in (at_alice, at_bob):
            await recorder.until("connected", lambda r=recorder: "connected" in r.states, 5)
            await recorder.until("a frame", lambda r=recorder: bool(r.frame_times), 5)
        assert at_alice.states[:2] == ["connecting", "connected"]
        connected = max(link.connected_at or 0 for link in (to_bob, to_alice)) - rang
        first_frame = max(at_alice.frame_times[0], at_bob.frame_times[0]) - rang
        print(f"ring->connected {connected * 1000:.0f} ms, first frame {first_frame * 1000:.0f} ms")

        # Frame rate over the next 30 frames on each side.
        for recorder in (at_alice, at_bob):
            start = len(recorder.frame_times)
            await recorder.until(
                "30 frames", lambda r=recorder, s=start: len(r.frame_times) >= s + 31, 5
            )
            times = recorder.frame_times[start : start + 31]
            rate = 30 / (times[-1] - times[0])
            print(f"received {rate:.1f} fps")
            assert 11 <= rate <= 19, rate
            assert recorder.frame_shapes == {(SIZE[1], SIZE[0], 3)}

        for recorder in (at_alice, at_bob):
            await recorder.until(
                "1.2 s of audio", lambda r=recorder: r.samples() >= 1.2 * 48_000, 5
            )
        assert tone_of(at_alice) == pytest.approx(660, abs=5)
        assert tone_of(at_bob) == pytest.approx(440, abs=5)

        assert at_bob.levels[-1] > 0.1, at_bob.levels[-3:]
        alice_media.set_muted(True)
        assert alice_media.muted
        await at_bob.until("silence at bob", lambda: at_bob.levels[-1] < 0.01, 3)
        assert at_alice.levels[-1] > 0.1  # bob still talks
        alice_media.set_muted(False)
        await at_bob.until("the tone again", lambda: at_bob.levels[-1] > 0.1, 3)

        assert alice_media.self_view() is not None
        assert alice_media.self_view().shape == (SIZE[1], SIZE[0], 3)  # type: ignore[union-attr]
        assert await to_bob.quality() == "good"  # loopback: no loss, no delay
    finally:
        await to_bob.close()
        await to_alice.close()
    assert at_alice.states[-1] == "closed"
    assert at_bob.states[-1] in ("closed",)


async def test_garbage_sdp_is_refused_and_the_link_still_works(
    medias: tuple[LocalMedia, LocalMedia],
) -> None:
    alice_media, bob_media = medias
    at_alice, at_bob = Recorder(), Recorder()
    caller = make_link(2, alice_media, at_alice)
    callee = make_link(1, bob_media, at_bob)
    try:
        offer = await caller.offer()
        garbage = [
            "",
            "hello",
            "v=0\r\nm=audio\r\n",
            "v=0\r\n" + "a=x\r\n" * (MAX_SDP // 5),
            offer.replace("a=ice-pwd:", "a=ice-x:"),
            offer.replace("a=fingerprint:", "a=fingerprintx:"),
            offer.replace("\r\n", "\r\n\x00", 1),
        ]
        for sdp in garbage:
            with pytest.raises(ValueError):
                await callee.answer(sdp)
            with pytest.raises(ValueError):
                await caller.accept(sdp)
        with pytest.raises(ValueError, match="limit"):
            await callee.answer(offer + "a=x\r\n" * 4000)
        # Neither link is hurt: the real exchange still connects.
        await caller.accept(await callee.answer(offer))
        await at_alice.until("connected", lambda: "connected" in at_alice.states, 5)
    finally:
        await caller.close()
        await callee.close()


@pytest.mark.slow  # over a second of media
async def test_an_audio_call_without_camera_sends_no_video(loopback: None) -> None:
    alice_media = LocalMedia(Devices(mic="sine:500", camera="testsrc"), video=False)
    bob_media = LocalMedia(Devices(mic="none"), video=False)
    at_alice, at_bob = Recorder(), Recorder()
    caller: PeerLink = make_link(2, alice_media, at_alice)
    callee: PeerLink = make_link(1, bob_media, at_bob)
    try:
        assert alice_media.video_track() is None
        await connect(caller, callee)
        await at_bob.until("1.2 s of audio", lambda: at_bob.samples() >= 1.2 * 48_000, 5)
        assert tone_of(at_bob) == pytest.approx(500, abs=5)
        assert not at_bob.frame_times and not at_alice.frame_times
    finally:
        await caller.close()
        await callee.close()
        await alice_media.close()
        await bob_media.close()


@pytest.mark.slow  # seconds of media
async def test_one_local_media_feeds_two_links(loopback: None) -> None:
    """A mesh of three: alice's one camera and microphone go to bob and to
    carol through a fresh track each, and both get the full rate."""
    alice = LocalMedia(Devices(mic="sine:440", camera="testsrc"), True, SIZE, FPS)
    bob = LocalMedia(Devices(mic="sine:660", camera="testsrc"), True, SIZE, FPS)
    carol = LocalMedia(Devices(mic="sine:880", camera="testsrc"), True, SIZE, FPS)
    at_bob, at_carol = Recorder(), Recorder()
    links = [
        make_link(2, alice, Recorder()),
        make_link(1, bob, at_bob),
        make_link(3, alice, Recorder()),
        make_link(1, carol, at_carol),
    ]
    try:
        await connect(links[0], links[1])
        await connect(links[2], links[3])
        for recorder in (at_bob, at_carol):
            await recorder.until("31 frames", lambda r=recorder: len(r.frame_times) >= 31, 10)
            await recorder.until("audio", lambda r=recorder: r.samples() >= 1.2 * 48_000, 5)
            rate = 30 / (recorder.frame_times[30] - recorder.frame_times[0])
            assert 11 <= rate <= 19, rate
            assert tone_of(recorder) == pytest.approx(440, abs=5)
    finally:
        for link in links:
            await link.close()
        for media in (alice, bob, carol):
            await media.close()
