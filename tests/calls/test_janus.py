"""Group calls through a real Janus (VideoRoom, HTTP API) in a private
network namespace (tests/helpers/janus.py). The participants run in a
subprocess inside the namespace (tests/calls/sfu_clients.py) and report
what they received as JSON; these tests judge it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from crab.calls.sfu import SfuError, SfuRoom
from crab.core.services.turn import janus_token
from tests.calls.sfu_clients import SIZE, TONES
from tests.helpers.janus import JanusServer, private_janus
from tests.helpers.services import free_port


@pytest.fixture
def janus() -> Iterator[JanusServer]:
    with private_janus() as server:
        yield server


@pytest.mark.slow
def test_three_people_see_and_hear_each_other_and_a_leaver_is_dropped(
    janus: JanusServer,
) -> None:
    # They join one after another: user 3 subscribes to 1 and 2 as it joins,
    # 1 learns of 2 and 3 (and 2 of 3) from Janus's events afterwards.
    result = janus.run_python("tests.calls.sfu_clients", "three", janus.url, str(janus.process.pid))
    pairs = result["pairs"]
    assert isinstance(pairs, dict)
    assert sorted(pairs) == sorted(f"{s}->{r}" for s in TONES for r in TONES if s != r)
    for pair, got in pairs.items():
        sender = int(pair.split("->")[0])
        assert got["size"] == list(SIZE), pair
        assert 10 <= got["fps"] <= 16, (pair, got)  # sent at 15 fps
        assert abs(got["tone"] - TONES[sender]) <= 5, (pair, got)
        assert got["level"] > 0.01, (pair, got)
    # user 3 left: the two others dropped it and still receive each other
    assert result["still_subscribed"] == {"1": [2], "2": [1]}
    print(
        f"\njoin ms {result['joined_ms']}, everyone receives everyone after "
        f"{result['ready_ms']} ms, leave seen after {result['left_ms']} ms; "
        f"CPU over the window: Janus {result['janus_cpu']} %, "
        f"3 clients in one process {result['clients_cpu']} % of a core"
    )


@pytest.mark.slow
def test_a_wrong_pin_is_refused_with_a_clear_error(janus: JanusServer) -> None:
    result = janus.run_python("tests.calls.sfu_clients", "wrong-pin", janus.url)
    error = result["error"]
    assert isinstance(error, str)
    assert "wrong pin" in error and "433" in error
    assert isinstance(result["ms"], int) and result["ms"] < 2000


@pytest.mark.slow
def test_janus_that_checks_signed_tokens_lets_in_only_a_valid_unexpired_one() -> None:
    secret, now = "sfu-secret", int(time.time())
    with private_janus(token_secret=secret) as janus:
        result = janus.run_python(
            "tests.calls.sfu_clients",
            "tokens",
            janus.url,
            janus_token(secret, now + 60),
            janus_token("another secret", now + 60),
            janus_token(secret, now - 1),
            janus_token(secret, now + 60, plugins=("janus.plugin.echotest",)),
            "",
        )
    errors = result["errors"]
    assert isinstance(errors, list) and len(errors) == 4
    for error in errors:
        assert isinstance(error, str) and "Janus refused" in error, errors


@pytest.mark.slow
def test_janus_dying_mid_call_is_reported_as_failed(janus: JanusServer) -> None:
    result = janus.run_python(
        "tests.calls.sfu_clients", "janus-dies", janus.url, str(janus.process.pid)
    )
    assert isinstance(result["failed_ms"], int) and result["failed_ms"] < 5000


async def test_janus_down_is_a_clear_error_at_once() -> None:
    states: list[tuple[int, str]] = []
    room = SfuRoom(
        f"http://127.0.0.1:{free_port()}/janus",
        1,
        "pin",
        7,
        "seven",
        None,
        None,
        [],
        False,
        on_frame=lambda user_id, frame: None,
        on_level=lambda user_id, level: None,
        on_state=lambda user_id, state: states.append((user_id, state)),
    )
    started = time.monotonic()
    with pytest.raises(SfuError, match="unreachable"):
        await room.join()
    assert time.monotonic() - started < 2
    await room.leave()  # after a failed join too, and twice
    await room.leave()
    assert states == []
