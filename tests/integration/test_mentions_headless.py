"""Mentions in the whole client, headless, against a real in-process
server: the bell rings for what is addressed to me and not for a busy
room, the chat list counts unread mentions, reading clears them, the
message is highlighted, and /bell is kept for the next start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.tui.app import ChatApp
from crab.tui.saved import SettingsFile
from crab.tui.state import AppState, Bell, ChatItem, Focus
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import sidebar
from tests.integration.test_app_changes_headless import meet
from tests.integration.test_app_headless import F2, Driver, person

BURST = 80
CTRL_N = "\x0e"


class BellCounter(DummyOutput):
    """prompt_toolkit's DummyOutput, counting the bells it is asked to ring."""

    def __init__(self) -> None:
        super().__init__()
        self.bells = 0
        self.rang = asyncio.Event()

    def bell(self) -> None:
        self.bells += 1
        self.rang.set()


@contextlib.asynccontextmanager
async def listener(crab: Crab, config_dir: Path) -> AsyncIterator[tuple[Driver, BellCounter]]:
    """A person at crab chat (as tests/integration/test_app_headless.py's
    `person`), whose terminal counts bells."""
    output = BellCounter()
    with create_pipe_input() as keys:
        with create_app_session(input=keys, output=output):
            app = ChatApp(f"127.0.0.1:{crab.port}", config_dir, input=keys, output=output)
            task = asyncio.create_task(app.run())
        try:
            yield Driver(app, keys), output
        finally:
            if app.app.is_running:
                app.app.exit()
            await asyncio.wait_for(task, 10)


def chat_named(state: AppState, name: str) -> ChatItem:
    (found,) = [c for c in state.chats if c.name == name]
    return found


async def say_all(client: CrabClient, chat_id: int, texts: list[str]) -> None:
    """Sends each text and waits for its ack (stored, in order)."""
    async with client.session() as live:
        for text in texts:
            cid = await live.send(chat_id, text)
            await live.wait_for(
                lambda f, cid=cid: f.ack is not None and f.ack.client_message_id == cid
            )


async def open_named(driver: Driver, name: str) -> None:
    """Ctrl+N until the chat named so is open."""
    for _ in driver.state.chats:
        if driver.state.active_chat == chat_named(driver.state, name).id:
            return
        before = driver.state.active_chat
        driver.type(CTRL_N)
        await driver.until(lambda s, before=before: s.active_chat != before)
    assert driver.state.active_chat == chat_named(driver.state, name).id


async def rung(output: BellCounter, bells: int) -> None:
    async with asyncio.timeout(10):
        while output.bells < bells:
            output.rang.clear()
            await output.rang.wait()


@pytest.mark.timeout(90)
async def test_a_burst_elsewhere_is_quiet_and_a_mention_rings_once(
    crab: Crab, tmp_path: Path
) -> None:
    async with (
        person(crab, tmp_path / "alice") as alice,
        listener(crab, tmp_path / "bob") as (bob, bob_bell),
    ):
        await meet(alice, bob)
        await alice.say("/create busy")
        busy = (await alice.until(lambda s: any(c.name == "busy" for c in s.chats))).active_chat
        assert busy is not None
        await alice.say("/invite bob")
        await bob.until(lambda s: len(s.invites) == 1)
        bob.type(F2)
        await bob.until(lambda s: s.focus is Focus.INVITES)
        await bob.say("/accept")
        await bob.until(lambda s: any(c.name == "busy" for c in s.chats))
        await open_named(bob, "general")
        assert bob.state.bell is Bell.MENTIONS  # the default
        bells_before = bob_bell.bells  # the invites rang

        typist = CrabClient("127.0.0.1", crab.port)
        try:
            await typist.sign_in("alice", "secret-pass")
            await say_all(typist, busy, [f"busy {i}" for i in range(BURST)])
            await bob.until(lambda s: chat_named(s, "busy").unread == BURST)
            await say_all(typist, busy, ["@BOB, a look please?"])
            await rung(bob_bell, bells_before + 1)
            state = await bob.until(lambda s: chat_named(s, "busy").mentions == 1)
            assert bob_bell.bells == bells_before + 1  # the burst rang nothing
            assert chat_named(state, "busy").unread == BURST + 1
            assert " # busy (81) @1\n" in "".join(f[1] for f in sidebar(state))

            # Reading the chat clears both counts (the server's: test_mentions.py).
            await open_named(bob, "busy")
            state = await bob.until(lambda s: chat_named(s, "busy").mentions == 0)
            assert chat_named(state, "busy").unread == 0
            await bob.until(lambda s: any("@BOB" in x.text for x in s.history(busy).lines))
            rows = visible_rows(bob.state, 80, 10)
            highlighted = [f[1] for row in rows for f in row if f[0] == "class:mention"]
            assert highlighted == ["@BOB, a look please?"]
            # In the open chat nothing rings; elsewhere @room rings; /bell off: nothing.
            general = chat_named(bob.state, "general").id
            await say_all(typist, busy, ["@bob in the open chat"])
            await say_all(typist, general, ["@room standup"])
            await rung(bob_bell, bells_before + 2)
            await bob.until(lambda s: chat_named(s, "general").mentions == 1)
            assert bob_bell.bells == bells_before + 2
            await bob.say("/bell off")
            await bob.until(lambda s: s.bell is Bell.OFF)
            await say_all(typist, general, ["@bob are you there?"])
            await bob.until(lambda s: chat_named(s, "general").mentions == 2)
            assert bob_bell.bells == bells_before + 2
        finally:
            typist.close()
    # Kept for the next start.
    async with listener(crab, tmp_path / "bob") as (bob, _):
        assert bob.state.bell is Bell.OFF
        await asyncio.wait_for(bob.app.started.wait(), 10)  # running: it can be quit
    assert SettingsFile(tmp_path / "bob").bell() == "off"
    assert (tmp_path / "bob" / "settings.json").stat().st_mode & 0o777 == 0o600
