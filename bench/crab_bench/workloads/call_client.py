"""One whole headless `crab chat` for `crab bench call`: the ChatApp with its
keys through a pipe and its screen drawn for real (a VT100 output in 24-bit
colour, writing into memory), with synthetic media (a tone, the moving test
pattern at 320x240@15).

Run as a module it is the callee, one client per process: it opens the
saved session in CONFIG_DIR, prints "ready" once connected, answers every
call the moment it rings (F7, as a person would), and runs until its stdin
closes or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

F7, F8 = "\x1b[18~", "\x1b[19~"
SIZE = (80, 24)  # the terminal the bench draws into (columns, rows)
READY = "ready"


class Sink:
    """Where a client's screen goes: counted, then dropped."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: str) -> int:
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def media_env() -> None:
    """What the clients run with: 24-bit colour (the video's colour depth is
    read from COLORTERM) and ICE on loopback only; aioice's line per
    candidate pair stays out of the bench's output."""
    os.environ["COLORTERM"] = "truecolor"
    os.environ["CRAB_ICE_HOSTS"] = "127.0.0.1"
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def headless(
    server: str, config_dir: Path, tone: int, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[Any, Any]]:
    """(ChatApp, its pipe input), started on the saved session in config_dir
    and connected; stopped on the way out."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import ColorDepth
    from prompt_toolkit.output.vt100 import Vt100_Output

    from crab.tui.app import ChatApp
    from crab.tui.config import ChatConfig

    media_env()
    output = Vt100_Output(
        Sink(),  # type: ignore[arg-type]  # a text stream in all it uses
        lambda: Size(rows=size[1], columns=size[0]),
        term="xterm-256color",
        default_color_depth=ColorDepth.DEPTH_24_BIT,
        enable_cpr=False,
    )
    config = ChatConfig(mic=f"sine:{tone}", speaker="none", camera="testsrc")
    with create_pipe_input() as keys, create_app_session(input=keys, output=output):
        chat = ChatApp(server, config_dir, input=keys, output=output, config=config, bell="off")
        task = asyncio.create_task(chat.run())
        try:
            await asyncio.wait_for(chat.started.wait(), 30)
            await until(chat, lambda s: s.connection.link.value == "connected", 30)
            yield chat, keys
        finally:
            if chat.app.is_running:
                chat.app.exit()
            await asyncio.wait_for(task, 15)


async def until(chat: Any, check: Any, timeout: float, what: str = "such state") -> Any:
    """The app's state once `check` passes (woken by each new state)."""
    changed = asyncio.Event()
    unsubscribe = chat.store.subscribe(lambda _: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while not check(chat.store.state):
                changed.clear()
                await changed.wait()
    except TimeoutError:
        state = chat.store.state
        raise TimeoutError(
            f"no {what} in {timeout:.0f}s (notice {state.notice!r}, my_call {state.my_call}, calls {state.calls})"
        ) from None
    finally:
        unsubscribe()
    return chat.store.state


async def _answer_every_ring(server: str, config_dir: Path) -> None:
    async with headless(server, config_dir, tone=660) as (chat, keys):
        answered: set[str] = set()

        def on_state(state: Any) -> None:
            ringing = state.ringing_for_me()
            if ringing is not None and state.my_call is None and ringing.id not in answered:
                answered.add(ringing.id)
                keys.send_text(F7)

        unsubscribe = chat.store.subscribe(on_state)
        print(READY, flush=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        def stdin_readable() -> None:
            if not sys.stdin.read(1):  # closed: the bench is done with me
                stop.set()

        loop.add_reader(sys.stdin.fileno(), stdin_readable)
        try:
            await stop.wait()
        finally:
            unsubscribe()
            loop.remove_reader(sys.stdin.fileno())


def main() -> None:
    media_env()
    server, config_dir = sys.argv[1], Path(sys.argv[2])
    asyncio.run(_answer_every_ring(server, config_dir))


if __name__ == "__main__":
    main()
