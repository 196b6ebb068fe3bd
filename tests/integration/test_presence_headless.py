"""Read receipts, typing and presence in the whole client, headless, against
a real in-process server: "seen by", "is typing...", ● ◐ ○."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from crab.core.app import Crab
from crab.tui.app import ChatApp
from crab.tui.state import AppState, Focus, PresenceState
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import names_panel, sidebar
from tests.helpers.tui import rows_text
from tests.integration.test_app_changes_headless import meet
from tests.integration.test_app_headless import F2, Driver, messages


@contextlib.asynccontextmanager
async def person(crab: Crab, config_dir: Path, idle: float = 300.0) -> AsyncIterator[Driver]:
    """As test_app_headless.person, with the idle time before away."""
    with create_pipe_input() as keys:
        with create_app_session(input=keys, output=DummyOutput()):
            app = ChatApp(
                f"127.0.0.1:{crab.port}", config_dir, input=keys, output=DummyOutput(), idle=idle
            )
            task = asyncio.create_task(app.run())
        try:
            yield Driver(app, keys)
        finally:
            if app.app.is_running:
                app.app.exit()
            await asyncio.wait_for(task, 10)


def screen(state: AppState) -> list[str]:
    return rows_text(visible_rows(state, 80, 20))


def shown(fragments: list[tuple[str, str]] | object) -> str:
    return "".join(f[1] for f in fragments)  # type: ignore[attr-defined]


def state_of(state: AppState, username: str) -> PresenceState | None:
    members = state.history(state.active_chat).members
    who = next((p for p in members if p.username == username), None)
    found = state.presence.get(who.id) if who else None
    return found.state if found else None


@pytest.mark.timeout(60)
async def test_seen_by_shows_under_the_newest_message_each_other_member_read(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await meet(alice, bob)
        await alice.say("hello bob")
        await bob.until(lambda s: "hello bob" in messages(s))  # open: bob's client marks it read
        state = await alice.until(lambda s: any("seen by bob" in r for r in screen(s)))
        rows = screen(state)
        at = next(i for i, r in enumerate(rows) if "hello bob" in r)
        assert "seen by bob" in rows[at + 1]
        # Nobody is "seen" under their own message; I never see myself.
        assert not any("seen by" in r for r in screen(bob.state))
        await bob.say("hi alice")
        state = await bob.until(lambda s: any("seen by alice" in r for r in screen(s)))
        rows = screen(state)
        at = next(i for i, r in enumerate(rows) if "hi alice" in r)
        assert "seen by alice" in rows[at + 1]
        assert not any("seen by bob" in r for r in rows)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_is_typing_shows_until_the_message_or_five_quiet_seconds(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await meet(alice, bob)
        bob.type("on my w")
        await alice.until(lambda s: any("bob is typing..." in r for r in screen(s)))
        # Nothing more from bob: it goes after a few quiet seconds.
        await alice.until(lambda s: not s.typing, timeout=15)
        assert not any("is typing" in r for r in screen(alice.state))
        bob.type("ay")  # past the client's pause between two notices: a new one
        await alice.until(lambda s: bool(s.typing))
        bob.type("\r")  # the message ends it at once
        state = await alice.until(lambda s: "on my way" in messages(s))
        assert state.typing == ()
        assert not any("is typing" in r for r in screen(state))


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_presence_marks_online_away_and_offline(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "alice") as alice:
        async with person(crab, tmp_path / "bob", idle=1.0) as bob:
            await meet(alice, bob)
            await alice.say("/names")
            await alice.until(lambda s: s.focus is Focus.NAMES)
            await alice.until(lambda s: state_of(s, "bob") is PresenceState.AWAY, timeout=20)
            assert "◐ bob" in shown(names_panel(alice.state))
            bob.type("x")  # a key press: back
            state = await alice.until(lambda s: state_of(s, "bob") is PresenceState.ONLINE)
            assert "● bob" in shown(names_panel(state))
            assert "*● alice" in shown(names_panel(state))
            # A personal conversation: the mark beside it in the sidebar.
            await alice.say("/dm bob")
            await bob.until(lambda s: len(s.invites) == 1)
            bob.type("\x7f" + F2)  # rub out the "x", then the invites
            await bob.until(lambda s: s.focus is Focus.INVITES)
            await bob.say("/accept")
            await alice.until(lambda s: any(not c.is_room for c in s.chats))
            await alice.until(lambda s: any(" ● bob" in r for r in shown(sidebar(s)).split("\n")))
        state = await alice.until(lambda s: state_of(s, "bob") is PresenceState.OFFLINE)
        listed = shown(names_panel(state))
        assert "○ bob" in listed and "last seen" in listed
        await alice.until(lambda s: any(" ○ bob" in r for r in shown(sidebar(s)).split("\n")))
