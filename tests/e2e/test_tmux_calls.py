"""End to end: a video call between two installed `crab chat` processes, each
in a tmux session of 100x30 in 24-bit colour, against a real `crab serve`
process, with synthetic media (a tone each, a moving test pattern for a
camera) over 127.0.0.1.

Alice types /video, Bob's call bar rings, F7 answers; both panes then draw
pictures in half blocks ("▀", coloured: capture-pane -e keeps the escape
sequences), and the pictures move. While the video plays Bob's keys still
reach his line and his message reaches Alice; F9 mutes, F8 hangs up and the
call leaves its line. Neither client logs a traceback.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_tmux_chat import EXITED, HEIGHT, WIDTH, Tmux, sign_up
from tests.helpers.process import CrabProcess

pytestmark = pytest.mark.slow  # tmux, a real crab serve and two clients with media

pytest.importorskip("aiortc")

CRAB = Path(sys.executable).parent / "crab"
HALF = "▀"
# An SGR sequence that sets a 24-bit foreground or background colour.
RGB = re.compile(r"\x1b\[[0-9;]*[34]8;2;\d+;\d+;\d+[0-9;]*m")


def chat_with_media(tmux: Tmux, session: str, server: str, tone: int) -> Path:
    """`crab chat` with a tone for a microphone, no speaker and the test
    pattern for a camera, in a terminal that says it has 24-bit colour;
    ICE gathers on 127.0.0.1 only. Returns its config folder."""
    config = tmux.tmp / f"config-{session}"
    command = shlex.join(
        [
            *("env", "COLORTERM=truecolor", "CRAB_ICE_HOSTS=127.0.0.1"),
            *(str(CRAB), "chat", "--server", server, "--config-dir", str(config)),
            *("--bell", "off", "--mic", f"sine:{tone}", "--speaker", "none"),
            *("--camera", "testsrc"),
        ]
    )
    script = f'{command}; echo "{EXITED} $?]"; sleep 3600'
    tmux(
        "new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT), "sh", "-c", script
    )
    return config


def coloured(tmux: Tmux, session: str) -> str:
    """The screen with its colours (escape sequences kept)."""
    return tmux("capture-pane", "-e", "-p", "-t", session)


def video_rows(screen: str) -> list[tuple[int, str]]:
    """(row number, row with its escapes) of the rows that draw a picture."""
    return [(n, row) for n, row in enumerate(screen.splitlines()) if HALF in row]


def wait_for_pictures(tmux: Tmux, session: str, timeout: float = 30) -> str:
    """The coloured screen once it holds rows of coloured half blocks."""
    deadline = time.monotonic() + timeout
    while True:
        screen = coloured(tmux, session)
        rows = video_rows(screen)
        if len(rows) >= 4 and all(RGB.search(row) for _, row in rows):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"no coloured picture on {session}'s screen:\n{screen}")
        time.sleep(0.2)


def wait_for_motion(tmux: Tmux, session: str, first: str, timeout: float = 15) -> None:
    """Waits for the picture rows to change from `first` (the pattern moves)."""
    before = dict(video_rows(first))
    deadline = time.monotonic() + timeout
    while True:
        now = dict(video_rows(coloured(tmux, session)))
        if any(now.get(n) not in (None, row) for n, row in before.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{session}'s picture did not change in {timeout}s")
        time.sleep(0.2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CrabProcess]:
    with CrabProcess.start(tmp_path / "data") as process:
        yield process


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(tmp_path)
    try:
        yield terminal
    finally:
        terminal.kill()


def test_a_video_call_in_two_real_terminals(server: CrabProcess, tmux: Tmux) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this end-to-end test needs it (apt-get install tmux)")
    started = time.monotonic()
    configs = {
        "alice": chat_with_media(tmux, "alice", server.target, 440),
        "bob": chat_with_media(tmux, "bob", server.target, 660),
    }
    sign_up(tmux, "alice")
    tmux.type("alice", "/create calls")
    tmux.wait_for_screen("alice", "#calls")
    sign_up(tmux, "bob")
    tmux.type("alice", "/invite bob")
    tmux.wait_for_screen("bob", "Invites: 1")
    tmux.type("bob", "/accept")
    tmux.wait_for_screen("alice", "bob accepted")

    tmux.type("alice", "/video")
    tmux.wait_for_screen("bob", "alice is calling")
    screen = tmux.wait_for_screen("bob", "(video call)")
    assert HALF not in screen, screen  # nothing drawn before he answers
    tmux.keys("bob", "F7")

    # Pictures in both panes, in 24-bit colour, and they move.
    firsts = {who: wait_for_pictures(tmux, who) for who in ("alice", "bob")}
    for who, first in firsts.items():
        wait_for_motion(tmux, who, first)

    # Keys still reach Bob's line while the video plays; his message reaches Alice.
    tmux.type("bob", "typing over the video", enter=False)
    screen = tmux.wait_for_screen("bob", "> typing over the video")
    tmux.keys("bob", "Enter")
    tmux.wait_for_screen("alice", "typing over the video")
    wait_for_motion(tmux, "bob", coloured(tmux, "bob"))  # and it still plays

    tmux.keys("alice", "F9")
    screen = tmux.wait_for_screen("alice", " muted ")
    assert "📞" in screen, screen

    tmux.keys("alice", "F8")
    for who in ("alice", "bob"):
        screen = tmux.wait_for_screen(who, "📞 video call ·")
    screen = tmux.wait_for_screen("bob", HALF, gone=True)  # the pane went with the call
    tmux.wait_for_screen("alice", HALF, gone=True)
    for who in ("alice", "bob"):
        assert EXITED not in tmux.screen(who), tmux.screen(who)
        log = configs[who] / "chat.log"
        text = log.read_text() if log.exists() else ""
        assert "Traceback" not in text, f"{who}'s chat.log:\n{text}"
    print(f"\n{tmux.screen('bob')}\n(e2e took {time.monotonic() - started:.1f}s)")
