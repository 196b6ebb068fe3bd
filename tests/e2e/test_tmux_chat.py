"""End to end: the installed `crab chat`, for two people at once, each in a
tmux session of 100x30, against a real `crab serve` process. The test types
keys as a person would and reads the screens back with `capture-pane`.

Bob's client goes through a TCP proxy, so his link alone can be cut while
Alice goes on writing; when it comes back his client must reconnect by itself
and show what he missed, each message exactly once.

Needs tmux (CI installs it); without it the test fails rather than skips.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.process import CrabProcess, crab_env
from tests.helpers.proxy import TcpProxy

pytestmark = pytest.mark.slow  # tmux and a real crab serve process

CRAB = Path(sys.executable).parent / "crab"  # the installed entry point
PASSWORD = "correct horse battery"
WIDTH, HEIGHT = 100, 30
EXITED = "[crab exited"
_sockets = itertools.count(1)


class Tmux:
    """A private tmux server (its own socket), one session per client."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"crab-e2e-{os.getpid()}-{next(_sockets)}"
        self.tmp = tmp
        # No CRAB_* setting from the caller's shell, and not nested in a tmux.
        self.env = {k: v for k, v in crab_env().items() if k != "TMUX"}

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {shlex.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def chat(self, session: str, server: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
        """`crab chat` in a new session; the pane stays open after it exits
        and says how it exited (so a crash shows up in the capture)."""
        config = self.tmp / f"config-{session}"
        command = shlex.join(
            [str(CRAB), "chat", "--server", server, "--config-dir", str(config), "--bell", "off"]
        )
        script = f'{command}; echo "{EXITED} $?]"; sleep 3600'
        size = ("-x", str(size[0]), "-y", str(size[1]))
        self("new-session", "-d", "-s", session, *size, "sh", "-c", script)

    def screen(self, session: str) -> str:
        return self("capture-pane", "-p", "-t", session)

    def keys(self, session: str, *keys: str) -> None:
        """Named keys: Enter, Tab, C-s, C-q..."""
        self("send-keys", "-t", session, *keys)

    def type(self, session: str, text: str, enter: bool = True) -> None:
        self("send-keys", "-t", session, "-l", text)
        if enter:
            self.keys(session, "Enter")

    def wait_for_screen(
        self, session: str, text: str, timeout: float = 15, gone: bool = False
    ) -> str:
        """The screen, once `text` is on it (or, with gone, off it); fails
        with the last capture."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen(session)
            if (text in screen) is not gone:
                return screen
            if time.monotonic() > deadline:
                where = "still on" if gone else "not on"
                raise AssertionError(
                    f"{text!r} {where} {session}'s screen after {timeout}s; it shows:\n{screen}"
                )
            time.sleep(0.1)

    def kill(self) -> None:
        """Ends the tmux server (its clients with it) and removes its socket."""
        with contextlib.suppress(OSError, AssertionError):  # no tmux, or no server
            socket = Path(self("display-message", "-p", "#{socket_path}").strip())
            self("kill-server")
            socket.unlink(missing_ok=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CrabProcess]:
    with CrabProcess.start(tmp_path / "data") as process:
        yield process


@pytest.fixture
def proxy(server: CrabProcess) -> Iterator[TcpProxy]:
    with TcpProxy(server.port) as tcp:
        yield tcp


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(tmp_path)
    try:
        yield terminal
    finally:
        terminal.kill()


def sign_up(tmux: Tmux, who: str) -> None:
    tmux.wait_for_screen(who, "Sign in to crab")
    tmux.keys(who, "C-s")
    tmux.wait_for_screen(who, "Confirm")
    tmux.type(who, who, enter=False)
    tmux.keys(who, "Tab")
    tmux.type(who, PASSWORD, enter=False)
    tmux.keys(who, "Tab")
    tmux.type(who, PASSWORD)
    tmux.wait_for_screen(who, f" {who} @ ")
    tmux.wait_for_screen(who, "| connected")


def test_two_people_chat_and_bob_misses_nothing(
    server: CrabProcess, proxy: TcpProxy, tmux: Tmux
) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this end-to-end test needs it (apt-get install tmux)")
    started = time.monotonic()
    via_proxy = f"127.0.0.1:{proxy.port}"
    tmux.chat("alice", server.target)
    tmux.chat("bob", via_proxy)

    sign_up(tmux, "alice")
    tmux.type("alice", "/create general")
    tmux.wait_for_screen("alice", "#general")
    sign_up(tmux, "bob")

    # The invite, seen by Bob live; his answer, seen by Alice live.
    tmux.type("alice", "/invite bob")
    tmux.wait_for_screen("alice", "invited bob")
    tmux.wait_for_screen("bob", "Invites: 1")
    tmux.type("bob", "/accept")
    tmux.wait_for_screen("bob", "#general")
    tmux.wait_for_screen("alice", "bob accepted")

    tmux.type("alice", "hello from alice")
    tmux.type("bob", "hi alice, bob here")
    for who in ("alice", "bob"):
        tmux.wait_for_screen(who, "hello from alice")
        tmux.wait_for_screen(who, "hi alice, bob here")

    # Bob's link goes down; Alice writes on, and Bob's line waits in his outbox.
    proxy.cut()
    tmux.wait_for_screen("bob", "reconnecting")
    tmux.type("bob", "typed while offline")
    tmux.wait_for_screen("bob", "1 unsent")
    missed = [f"while you were away #{n}" for n in (1, 2, 3)]
    for text in missed:
        tmux.type("alice", text)
    for text in missed:
        tmux.wait_for_screen("alice", text)
    tmux.wait_for_screen("alice", "unsent", gone=True)  # the server has them all
    assert not any(text in tmux.screen("bob") for text in missed), tmux.screen("bob")

    # It comes back: Bob's client reconnects by itself (backoff) and catches up.
    proxy.restore()
    tmux.wait_for_screen("bob", "| connected", timeout=30)
    for text in missed:
        tmux.wait_for_screen("bob", text)
    tmux.wait_for_screen("alice", "typed while offline")
    # A message after the catch-up: once Bob sees it, any duplicate from the
    # resume (which comes before it on the stream) would be on screen too.
    tmux.type("alice", "welcome back bob")
    screen = tmux.wait_for_screen("bob", "welcome back bob")
    everything = [*missed, "hello from alice", "hi alice, bob here", "typed while offline"]
    for text in [*everything, "welcome back bob"]:
        assert screen.count(text) == 1, f"{text!r} {screen.count(text)} times:\n{screen}"
    tmux.wait_for_screen("bob", "unsent", gone=True)
    assert proxy.connections >= 2, "Bob's client never reconnected through the proxy"

    # The session was saved: Bob quits and comes back without signing in.
    tmux.keys("bob", "C-q")
    tmux.wait_for_screen("bob", f"{EXITED} 0]")
    tmux("kill-session", "-t", "bob")
    tmux.chat("bob", via_proxy)
    tmux.wait_for_screen("bob", "| connected")
    screen = tmux.wait_for_screen("bob", "welcome back bob")
    assert "Sign in to crab" not in screen, screen
    assert "# general" in screen and " bob @ " in screen, screen
    assert screen.count("while you were away #2") == 1, screen

    # Alice is still fine, and sees Bob's next words.
    tmux.type("bob", "back again")
    screen = tmux.wait_for_screen("alice", "back again")
    for text in everything:
        assert screen.count(text) == 1, f"{text!r} {screen.count(text)} times:\n{screen}"
    print(f"\n{tmux.screen('alice')}\n(e2e took {time.monotonic() - started:.1f}s)")


def test_edits_deletes_reactions_and_replies_reach_bob_after_an_outage(
    server: CrabProcess, proxy: TcpProxy, tmux: Tmux
) -> None:
    """What Alice changes while Bob's link is down is on his screen once he
    is back: the edit, the tombstone, the reaction; then he finds the
    edited words with /search."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this end-to-end test needs it (apt-get install tmux)")
    tmux.chat("alice", server.target)
    tmux.chat("bob", f"127.0.0.1:{proxy.port}")
    sign_up(tmux, "alice")
    tmux.type("alice", "/create general")
    tmux.wait_for_screen("alice", "#general")
    sign_up(tmux, "bob")
    tmux.type("alice", "/invite bob")
    tmux.wait_for_screen("bob", "Invites: 1")
    tmux.type("bob", "/accept")
    tmux.wait_for_screen("alice", "bob accepted")

    # Bob replies to Alice's message from selection mode (F5, r).
    tmux.type("alice", "where is the kettle")
    tmux.wait_for_screen("bob", "where is the kettle")
    tmux.keys("bob", "F5")
    tmux.keys("bob", "r")
    tmux.type("bob", "in the cupboard")
    screen = tmux.wait_for_screen("alice", "in the cupboard")
    assert "↳ alice: where is the kettle" in screen, screen

    proxy.cut()
    tmux.wait_for_screen("bob", "reconnecting")
    tmux.type("alice", "the meeting is at noom")
    tmux.wait_for_screen("alice", "noom")
    tmux.wait_for_screen("alice", "sending", gone=True)  # stored: /edit may take it
    tmux.type("alice", "/edit the meeting is at noon sharp")
    tmux.wait_for_screen("alice", "noon sharp")
    tmux.type("alice", "the wifi password is hunter2")
    tmux.wait_for_screen("alice", "hunter2")
    tmux.wait_for_screen("alice", "sending", gone=True)
    tmux.type("alice", "/delete")
    tmux.wait_for_screen("alice", "hunter2", gone=True)
    # Her reaction lands on the newest message that is not deleted: her edit.
    tmux.type("alice", "/react 👍")
    tmux.wait_for_screen("alice", "👍 1")

    proxy.restore()
    tmux.wait_for_screen("bob", "| connected", timeout=30)
    screen = tmux.wait_for_screen("bob", "noon sharp")
    tmux.wait_for_screen("bob", "message deleted")
    screen = tmux.wait_for_screen("bob", "👍 1")
    assert "noom" not in screen and "hunter2" not in screen, screen
    assert "(edited)" in screen and "↳ alice: where is the kettle" in screen, screen

    tmux.type("bob", "/search noon")
    tmux.wait_for_screen("bob", "Messages holding 'noon'")
    screen = tmux.wait_for_screen("bob", "searching...", gone=True)  # the answer is in
    found = [row for row in screen.splitlines() if "noon sharp" in row]
    assert len(found) == 1 and "general" in found[0] and "alice" in found[0], screen
    tmux.keys("bob", "Enter")  # opens the chat at that message
    screen = tmux.wait_for_screen("bob", "Messages holding", gone=True)
    assert "the meeting is at noon sharp (edited)" in screen, screen

    # An address is an OSC 8 hyperlink: the terminal takes the sequences,
    # and the screen shows the address and nothing of them.
    tmux.type("alice", "agenda: https://example.org/agenda?week=49")
    screen = tmux.wait_for_screen("bob", "https://example.org/agenda?week=49")
    assert "8;id=" not in screen and "\\" not in screen, screen


def test_wide_text_and_emoji_on_a_narrow_terminal(server: CrabProcess, tmux: Tmux) -> None:
    """At 44 columns (the chat list hides, the gutter shrinks) a 120-character
    CJK message is shown whole, wrapped by columns; an emoji sequence leaves
    no stray characters at the row's end; wider, the chat list comes back."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this end-to-end test needs it (apt-get install tmux)")
    tmux.chat("alice", server.target, size=(44, 20))
    sign_up(tmux, "alice")
    tmux.type("alice", "/create wide")
    tmux.wait_for_screen("alice", "#wide")
    cjk = "".join(chr(0x4E00 + i) for i in range(120))
    tmux.type("alice", cjk)
    screen = tmux.wait_for_screen("alice", cjk[-5:])
    assert cjk in "".join(row.strip() for row in screen.splitlines()), screen
    assert " Chats" not in screen, screen

    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    for text in (f"B2 {family} Z|", "C3 \u2764\ufe0f Y|"):
        tmux.type("alice", text)
        marker = text[-2:]
        tmux.wait_for_screen("alice", marker)
        screen = tmux.wait_for_screen("alice", "(sending)", gone=True)
        row = next(r for r in screen.splitlines() if marker in r)
        assert row.rstrip().endswith(marker) and row.count(marker) == 1, screen
    assert "B2 \U0001f468\U0001f469\U0001f467 Z|" in screen, screen

    tmux("resize-window", "-t", "alice", "-x", "100", "-y", "30")
    screen = tmux.wait_for_screen("alice", " Chats")  # wide enough: shown
    assert cjk[:20] in screen, screen
    tmux("resize-window", "-t", "alice", "-x", "44", "-y", "20")
    # Redrawn at 44 columns (tmux resizes the pane a moment later): the
    # message's first row ends at its 14th character again.
    tmux.wait_for_screen("alice", cjk[12:14] + "\n")
    assert " Chats" not in tmux.screen("alice")
    tmux.keys("alice", "F6")  # the chat list, hidden below 60 columns, comes
    screen = tmux.wait_for_screen("alice", " Chats")
    assert "一丁丂" in screen, screen  # and the messages still show beside it


def test_alt_keys_completion_menu_and_read_marker_in_a_real_terminal(
    server: CrabProcess, tmux: Tmux
) -> None:
    """tmux sends Alt+1 and Alt+Left as a terminal does (Esc, then the key):
    they switch chats and type nothing; `/inv` opens the menu of commands
    with their help, Esc closes it; a chat opened with unread messages
    shows the "new messages" line above them."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: this end-to-end test needs it (apt-get install tmux)")
    tmux.chat("alice", server.target)
    tmux.chat("bob", server.target)
    sign_up(tmux, "alice")
    sign_up(tmux, "bob")
    for name in ("one", "two", "three"):
        tmux.type("alice", f"/create {name}")
        tmux.wait_for_screen("alice", f"#{name} ")
    tmux.type("alice", "/invite bob")
    tmux.wait_for_screen("bob", "Invites: 1")
    tmux.type("bob", "/accept")
    tmux.wait_for_screen("alice", "bob accepted")
    tmux.type("alice", "before you came")
    tmux.keys("alice", "M-1")
    tmux.wait_for_screen("alice", "#one ")
    tmux.wait_for_screen("bob", "before you came")
    tmux.type("bob", "news for three")
    tmux.wait_for_screen("alice", "3 # three (1)")
    tmux.keys("alice", "M-Right")
    tmux.wait_for_screen("alice", "#two ")
    tmux.keys("alice", "M-Right")
    screen = tmux.wait_for_screen("alice", "#three ")
    rows = screen.splitlines()
    marker = next(i for i, row in enumerate(rows) if "── new messages ──" in row)
    assert "news for three" in rows[marker + 1] and "before you came" in rows[marker - 1], screen
    tmux.keys("alice", "M-Left")
    screen = tmux.wait_for_screen("alice", "#two ")
    assert [row for row in screen.splitlines() if row.startswith(">")] == [">"], screen

    tmux.type("alice", "/inv", enter=False)
    tmux.wait_for_screen("alice", "invite someone to the open room")
    tmux.keys("alice", "Escape")
    screen = tmux.wait_for_screen("alice", "invite someone to the open room", gone=True)
    assert any(row.startswith("> /inv") for row in screen.splitlines()), screen
