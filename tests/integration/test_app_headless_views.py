"""The whole client, headless, drawn at a terminal's size: a narrow
terminal still shows the messages (the chat list hides, F6 brings it
back), the help scrolls, the sign-up hints are whole, and paging moves by
the pane's height."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.application.current import set_app
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Screen as Canvas
from prompt_toolkit.layout.screen import WritePosition
from prompt_toolkit.output import DummyOutput

from crab.core.app import Crab
from crab.tui.app import ChatApp
from crab.tui.state import Focus, Screen
from tests.integration.test_app_headless import CTRL_S, Driver, messages

F1 = "\x1bOP"
F6 = "\x1b[17~"
PAGE_UP = "\x1b[5~"
PAGE_DOWN = "\x1b[6~"
DOWN = "\x1b[B"


class SizedOutput(DummyOutput):
    """Draws nowhere, at a terminal's size."""

    def __init__(self, columns: int, rows: int) -> None:
        self.size = Size(rows=rows, columns=columns)

    def get_size(self) -> Size:
        return self.size


@contextlib.asynccontextmanager
async def person(crab: Crab, config_dir: Path, columns: int, rows: int) -> AsyncIterator[Driver]:
    with create_pipe_input() as keys:
        output = SizedOutput(columns, rows)
        with create_app_session(input=keys, output=output):
            app = ChatApp(f"127.0.0.1:{crab.port}", config_dir, input=keys, output=output)
            task = asyncio.create_task(app.run())
        try:
            yield Driver(app, keys)
        finally:
            if app.app.is_running:
                app.app.exit()
            await asyncio.wait_for(task, 10)


def screen(driver: Driver) -> list[str]:
    """The rows as the app draws them at its terminal's size."""
    app = driver.app.app
    size = app.output.get_size()
    canvas = Canvas()
    # A new frame: controls cache their text per render_counter.
    app.render_counter += 1
    with set_app(app):
        app.layout.container.write_to_screen(
            canvas,
            MouseHandlers(),
            WritePosition(0, 0, size.columns, size.rows),
            parent_style="",
            erase_bg=False,
            z_index=None,
        )
        canvas.draw_all_floats()
    return [
        "".join(canvas.data_buffer[y][x].char for x in range(size.columns)).rstrip()
        for y in range(size.rows)
    ]


@pytest.mark.timeout(60)
async def test_a_narrow_terminal_shows_the_messages_and_f6_the_chat_list(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice", 40, 16) as alice:
        await alice.sign_up("alice")
        await alice.say("/create general")
        await alice.until(lambda s: s.chat(s.active_chat) is not None)
        text = "a message long enough to wrap twice on a narrow terminal"
        await alice.say(text)
        await alice.until(lambda s: s.outbox == () and messages(s) == [text])
        rows = screen(alice)
        assert all(len(row) <= 40 for row in rows)
        assert " Chats" not in rows  # the chat list hides below 60 columns
        body = " ".join(rows)
        assert all(word in body.split() for word in text.split()), rows
        alice.type(F6)
        await alice.until(lambda s: s.sidebar is True)
        rows = screen(alice)
        assert any(row.startswith(" Chats") for row in rows), rows


@pytest.mark.timeout(60)
async def test_the_help_scrolls_to_its_end_at_80x24(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "bob", 80, 24) as bob:
        await bob.sign_up("bob")
        await bob.say("/create notes")
        await bob.until(lambda s: s.chat(s.active_chat) is not None)
        bob.type(F1)
        await bob.until(lambda s: s.focus is Focus.HELP)
        rows = screen(bob)
        assert any("PgDn scroll" in row and "Esc closes" in row for row in rows), rows
        assert not any("/quit" in row for row in rows)
        bob.type(DOWN)
        await bob.until(lambda s: s.help_scroll == 1)
        for _ in range(12):
            bob.type(PAGE_DOWN)
        await bob.until(lambda s: any("/quit" in row for row in screen(bob)))
        assert bob.state.scroll == 0  # the chat did not scroll under the help


@pytest.mark.timeout(60)
async def test_the_sign_up_hints_are_whole_at_80x24(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "carol", 80, 24) as carol:
        await carol.until(lambda s: s.screen is Screen.SIGN_IN)
        assert any("Ctrl+Q: quit" in row for row in screen(carol))
        carol.type(CTRL_S)
        await carol.until(lambda s: s.sign_in.signing_up)
        rows = screen(carol)
        assert any("Ctrl+S: sign in" in row and "Ctrl+Q: quit" in row for row in rows), rows


@pytest.mark.timeout(60)
async def test_page_up_moves_by_the_pane_and_stops_at_the_top(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "dave", 100, 20) as dave:
        await dave.sign_up("dave")
        await dave.say("/create log")
        await dave.until(lambda s: s.chat(s.active_chat) is not None)
        for i in range(40):
            await dave.say(f"line {i}")
        await dave.until(lambda s: s.outbox == () and len(messages(s)) == 40)
        dave.type(PAGE_UP)
        state = await dave.until(lambda s: s.scroll > 0)
        _, height = state.pane
        assert height == 15 and state.scroll == height - 3  # one-row messages
        for _ in range(5):
            dave.type(PAGE_UP)
        await dave.until(lambda s: any("beginning of the chat" in r for r in screen(dave)))
        rows = screen(dave)
        top = next(i for i, r in enumerate(rows) if "beginning of the chat" in r)
        assert top == 2  # the pane's first row, under the header and its rule
