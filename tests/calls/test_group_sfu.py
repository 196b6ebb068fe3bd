"""A whole group call through crab and a real Janus: the crab server hands
out the SFU (mesh_max 2, so a room of three goes through it) and a signed
token per member; Janus checks the tokens with the same secret. The crab
server and three headless clients run in one process inside Janus's
network namespace (tests/calls/group_call.py) and report JSON; this judges
it: everyone sees and hears the two others, one hangs up and the two others
go on, the call ends when the last but one leaves."""

from __future__ import annotations

import pytest

from tests.calls.group_call import TONES
from tests.helpers.janus import private_janus

pytest.importorskip("aiortc")

SECRET = "group-sfu-secret"
# Hz: a late or lost packet on two busy cores puts a phase jump into the
# second analysed, which moves the peak a few 1 Hz bins (seen: 6, 11); the
# tones are 220 Hz apart, so this still tells whose sound it is.
TOLERANCE = 20


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_people_in_a_video_call_through_janus() -> None:
    with private_janus(token_secret=SECRET) as janus:
        result = janus.run_python("tests.calls.group_call", janus.url, SECRET, timeout=200)
    calls = result["calls"]
    assert isinstance(calls, dict) and sorted(calls) == sorted(TONES)
    rooms = {c["sfu_room"] for c in calls.values()}
    assert len(rooms) == 1 and 0 not in rooms  # one Janus room, for all three
    assert all(c["sfu_url"] == janus.url for c in calls.values())

    # Janus lets in crab's members (their tokens), not someone with only the pin.
    assert "Janus refused" in str(result["without_token"]), result["without_token"]

    heard = result["heard"]
    assert isinstance(heard, dict)
    assert sorted(heard) == sorted(f"{s}->{r}" for s in TONES for r in TONES if s != r)
    for pair, got in heard.items():
        sender = pair.split("->")[0]
        assert abs(got["tone"] - TONES[sender]) <= TOLERANCE, (pair, got)
        assert got["level"] > 0.01, (pair, got)

    # carol left: alice and bob still hear each other, her link is not connected
    go_on = result["go_on"]
    assert isinstance(go_on, dict) and sorted(go_on) == ["alice->bob", "bob->alice"]
    for pair, got in go_on.items():
        assert abs(got["tone"] - TONES[pair.split("->")[0]]) <= TOLERANCE, (pair, got)
        assert got["carol_link"] == "left", (pair, got)

    # bob left too: alice alone, the call ended and left its line
    assert "call ended" in str(result["ended_notice"])
    assert result["live_calls"] == 0
    line = result["line"]
    assert isinstance(line, list) and len(line) == 1 and line[0].startswith("📞 video call · ")
    print(
        f"\neveryone sees and hears everyone {result['ready_ms']} ms after /video; {heard}; "
        f"after carol left: {go_on}; no token: {result['without_token']}"
    )
