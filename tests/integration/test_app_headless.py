"""The whole client, headless (pipe input, no terminal), against a real
in-process server: two people sign up, meet in a room and talk."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.core.domain import commands as cmd
from crab.errors import Unavailable
from crab.proto.crab import v1 as pb
from crab.tui import runner
from crab.tui.app import ChatApp
from crab.tui.config import ChatConfig
from crab.tui.saved import SessionFile
from crab.tui.state import AppState, Focus, Link, Screen

CTRL_S = "\x13"
CTRL_Q = "\x11"
F2 = "\x1bOQ"


class Driver:
    """One person at a headless crab chat."""

    def __init__(self, app: ChatApp, keys: PipeInput) -> None:
        self.app = app
        self.keys = keys

    @property
    def state(self) -> AppState:
        return self.app.store.state

    async def until(self, check: Callable[[AppState], bool], timeout: float = 10) -> AppState:
        """Waits for a state that passes `check` (woken by each new state)."""
        changed = asyncio.Event()
        unsubscribe = self.app.store.subscribe(lambda _: changed.set())
        try:
            async with asyncio.timeout(timeout):
                while not check(self.state):
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"state never matched; last: {self.state}") from None
        finally:
            unsubscribe()
        return self.state

    def type(self, text: str) -> None:
        self.keys.send_text(text)

    async def say(self, line: str) -> None:
        self.type(line + "\r")

    async def create_room(self, name: str) -> None:
        """/create NAME, once it is the open chat."""
        await self.say(f"/create {name}")
        await self.until(lambda s: (c := s.chat(s.active_chat)) is not None and c.name == name)

    async def line_shows(self, text: str) -> None:
        """Waits (up to 2 s) for the message line to hold `text`: keys typed
        reach the line's buffer without a new state to wait on."""
        line = self.app.message_line
        for _ in range(200):
            if line.text == text:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the message line holds {line.text!r}, not {text!r}")

    async def sign_up(self, name: str) -> None:
        await self.until(lambda s: s.screen is Screen.SIGN_IN)
        self.type(CTRL_S)
        await self.until(lambda s: s.sign_in.signing_up)
        self.type(f"{name}\tsecret-pass\tsecret-pass\r")
        await self.until(lambda s: s.screen is Screen.CHATS)
        await self.until(lambda s: s.connection.link is Link.CONNECTED)


@contextlib.asynccontextmanager
async def person(
    crab: Crab, config_dir: Path, port: int = 0, config: ChatConfig | None = None
) -> AsyncIterator[Driver]:
    """`port`: reach the server there instead (a proxy in front of it);
    `config`: config.toml's settings, as `crab chat` reads them."""
    with create_pipe_input() as keys:
        # Each app its own prompt_toolkit session: two apps share one loop here.
        with create_app_session(input=keys, output=DummyOutput()):
            server = f"127.0.0.1:{port or crab.port}"
            app = ChatApp(server, config_dir, input=keys, output=DummyOutput(), config=config)
            task = asyncio.create_task(app.run())
        try:
            yield Driver(app, keys)
        finally:
            if app.app.is_running:
                app.app.exit()
            await asyncio.wait_for(task, 10)


def runner_tasks() -> list[asyncio.Task[object]]:
    """Tasks of a client's runner still on the loop."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").startswith("Runner.")
    ]


def messages(state: AppState) -> list[str]:
    return [line.text for line in state.history(state.active_chat).lines]


@pytest.mark.timeout(60)
async def test_two_people_meet_in_a_room(crab: Crab, tmp_path: Path) -> None:
    async with person(crab, tmp_path / "alice") as alice, person(crab, tmp_path / "bob") as bob:
        await alice.sign_up("alice")
        await bob.sign_up("bob")

        await alice.say("/create general")
        await alice.until(lambda s: s.chat(s.active_chat) is not None)
        await alice.say("/invite bob")
        await alice.until(lambda s: "invited bob" in s.notice)

        await bob.until(lambda s: len(s.invites) == 1)
        bob.type(F2)
        await bob.until(lambda s: s.focus is Focus.INVITES)
        await bob.say("/accept")
        state = await bob.until(lambda s: any(c.name == "general" for c in s.chats))
        assert state.invites == ()
        await alice.until(lambda s: "bob accepted" in s.notice)

        await alice.say("hello bob")
        await bob.until(lambda s: "hello bob" in messages(s))
        await bob.say("hi alice")
        await alice.until(lambda s: messages(s)[-2:] == ["hello bob", "hi alice"])
        await alice.until(lambda s: s.outbox == ())

        await bob.say("/leave")
        await bob.until(lambda s: s.chats == ())
        await alice.until(lambda s: "bob left" in s.notice)

        # Signed in sessions are remembered for the next start.
        assert SessionFile(tmp_path / "alice").load(alice.state.server) is not None
        alice.type(CTRL_Q)
    mode = (tmp_path / "alice" / "sessions.json").stat().st_mode & 0o777
    assert mode == 0o600


@pytest.mark.timeout(60)
async def test_saved_session_opens_straight_into_chats_and_logout_forgets_it(
    crab: Crab, tmp_path: Path
) -> None:
    async with person(crab, tmp_path / "carol") as carol:
        await carol.sign_up("carol")
        await carol.say("/create notes")
        await carol.until(lambda s: len(s.chats) == 1)
        carol.type(CTRL_Q)
    # Quitting waits for what it cancelled (the live stream too): nothing of
    # the client is left on the loop to end, or fail, unobserved.
    assert runner_tasks() == []
    async with person(crab, tmp_path / "carol") as carol:
        state = await carol.until(lambda s: s.screen is Screen.CHATS and len(s.chats) == 1)
        assert state.me is not None and state.me.username == "carol"
        await carol.say("/logout")
        await carol.until(lambda s: s.screen is Screen.SIGN_IN)
    assert runner_tasks() == []
    assert SessionFile(tmp_path / "carol").load(f"127.0.0.1:{crab.port}") is None


async def test_an_action_whose_answer_was_lost_is_retried_and_done_once(
    crab: Crab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server makes the room but its answer is lost (UNAVAILABLE, as when
    no reply comes in time): crab chat tries again with the same request id
    and gets that room, not a second one."""
    monkeypatch.setattr(runner, "ACTION_RETRIES", (0.05, 0.05, 0.05))
    request = crab.broker.request
    request_ids: list[str] = []

    async def answer_lost_once(command: cmd.Command, timeout: float = 30.0) -> object:
        result = await request(command, timeout)
        if isinstance(command, cmd.CreateRoom):
            request_ids.append(command.request_id)
            if len(request_ids) == 1:
                raise Unavailable("no worker answered in time; try again")
        return result

    monkeypatch.setattr(crab.broker, "request", answer_lost_once)
    async with person(crab, tmp_path / "alice") as alice:
        await alice.sign_up("alice")
        await alice.say("/create ops")
        state = await alice.until(lambda s: "created room ops" in s.notice)
        assert [c.name for c in state.chats] == ["ops"]
        alice.type(CTRL_Q)
    assert len(request_ids) == 2 and request_ids[0] == request_ids[1]
    client = CrabClient("127.0.0.1", crab.port)
    try:
        await client.sign_in("alice", "secret-pass")
        found = await client.chats.my_chats(pb.Empty(), metadata=client.metadata)
        assert [s.chat.name for s in found.chats] == ["ops"]
    finally:
        client.close()
