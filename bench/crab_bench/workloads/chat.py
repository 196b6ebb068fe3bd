"""chat: how quick `crab chat` feels to the person at the keyboard.

First paint: the installed `crab chat`, spawned in a pseudo-terminal of
100x30, timed from the spawn until its first screen has reached the
terminal: the sign-in form (a fresh HOME, so no saved session) and, against
the bench's own `crab serve`, a saved session, which opens straight into the
chats. Each run is a new process; one unmeasured run of each comes first.

Keys: the client in this process, headless but drawing for real (pipe
input; a VT100 output writing into memory, so building the screen and its
escape sequences is counted), on a chat of 10,000 loaded messages: the time
from a key press until the screen has been drawn again, for typed
characters, PageUp (all the way to the first message) and PageDown.

The client is reached only through its public surface: `crab chat`, the
`ChatApp` class and `crab.tui.demo` (the long chat, the saved session)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from crab_bench.report import Latency, Report
from crab_bench.server import BenchError

WIDTH, HEIGHT = 100, 30  # the terminal's size unless --size says otherwise
PAINT_TIMEOUT = 30.0  # seconds for one start to show its first screen
FIRST_PAINT_TARGET_MS = 300.0
KEY_TARGET_MS = 50.0  # p99 of a key press: our reading of "without lag"
SIGN_IN_TEXT = "Sign in to crab"
PAGE_UP, PAGE_DOWN = "\x1b[5~", "\x1b[6~"
TYPED = "the quick brown fox jumps over the lazy dog "
USERNAME = "bench.chat"

# Cursor-forward (CSI n C) stands for n unchanged cells; other escape
# sequences (colours, modes, cursor moves) carry no text.
_FORWARD = re.compile(r"\x1b\[(\d*)C")
_ESCAPE = re.compile(
    r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78DEHMc])"
)


def screen_text(raw: bytes) -> str:
    """What a terminal output stream says, without its escape sequences."""
    text = raw.decode("utf-8", "replace")
    text = _FORWARD.sub(lambda m: " " * int(m.group(1) or 1), text)
    return _ESCAPE.sub("", text)


def crab_command() -> list[str]:
    """The installed `crab` beside this Python, as a person runs it."""
    script = Path(sys.executable).parent / "crab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "crab"]


def client_env(home: Path) -> dict[str, str]:
    """A clean environment for a `crab chat`: its own HOME and config folder,
    no CRAB_* settings, a common terminal. PYTHONDONTWRITEBYTECODE is dropped
    so crab's modules are read from their bytecode cache, as in any install
    (set, every start compiles them again: tens of ms more)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CRAB_") and k not in ("PYTHONDONTWRITEBYTECODE", "TMUX")
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), TERM="xterm-256color")
    return env


def first_paint(
    command: list[str], env: dict[str, str], expect: str, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> float:
    """Seconds from spawning `command` in a pseudo-terminal of `size`
    (columns, rows) until `expect` is on its screen. The process is stopped
    (SIGTERM, by its pid) after."""
    master, slave = os.openpty()
    columns, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    out = b""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,  # its own session: the pty is its terminal
        close_fds=True,
    )
    os.close(slave)
    try:
        deadline = started + PAINT_TIMEOUT
        while (left := deadline - time.perf_counter()) > 0:
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process has closed the terminal
                chunk = b""
            if not chunk:
                break
            out += chunk
            if expect in screen_text(out):
                return time.perf_counter() - started
        tail = screen_text(out)[-600:].strip()
        status = process.poll()
        how = f"exited with {status}" if status is not None else "is still running"
        raise BenchError(f"{expect!r} never appeared ({how}); the terminal shows:\n{tail}")
    finally:
        _stop(process)
        os.close(master)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- the saved-session start -------------------------------------------------


@contextlib.contextmanager
def saved_session(config_dir: Path) -> Iterator[str]:
    """The bench's own `crab serve`, an account on it, and that account's
    session saved in `config_dir`, as `crab chat` leaves it after a sign-in.
    Yields the server's HOST:PORT."""
    from grpclib.client import Channel

    from crab.tui.demo import save_session
    from crab_bench import rpc
    from crab_bench.server import OwnServer

    own = OwnServer("cheap")
    try:
        endpoint = own.start()
        server = f"{endpoint.host}:{endpoint.port}"

        async def sign_up() -> Any:
            channel = Channel(endpoint.host, endpoint.port)
            try:
                tokens = await rpc.sign_up(channel, USERNAME)
                await rpc.create_room(channel, tokens.access_token, "bench")
                return tokens
            finally:
                channel.close()

        tokens = asyncio.run(sign_up())
        save_session(config_dir, server, USERNAME, tokens.access_token, tokens.refresh_token)
        yield server
    finally:
        own.stop()


# ---- keys on a chat of 10,000 messages ---------------------------------------


class _Sink:
    """Where the client's screen goes: counted, then dropped."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: str) -> int:
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


@dataclass
class KeyTimes:
    seconds: dict[str, list[float]] = field(default_factory=dict)  # kind -> per press
    written: list[int] = field(default_factory=list)  # characters drawn per press
    scroll_at_top: int = 0
    top_row_at_top: str = ""  # the message pane's first row after the PageUps


async def key_latencies(
    messages: int,
    typed: int,
    pages: int,
    config_dir: Path,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> KeyTimes:
    """The whole client, drawing into memory: each key is sent through the
    input pipe and timed until the screen has been drawn again."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    from crab.tui.app import ChatApp
    from crab.tui.demo import big_chat
    from crab.tui.views.messages import visible_rows

    sink = _Sink()
    output = Vt100_Output(
        sink,  # type: ignore[arg-type]  # a text stream in all it uses
        lambda: Size(rows=size[1], columns=size[0]),
        term="xterm-256color",
        enable_cpr=False,
    )
    times = KeyTimes()
    with create_pipe_input() as keys, create_app_session(input=keys, output=output):
        chat = ChatApp(
            "127.0.0.1:1", config_dir, input=keys, output=output, state=big_chat(messages)
        )
        drawn = asyncio.Event()
        chat.app.after_render += lambda _: drawn.set()
        # The client as `crab chat` runs it. With no session to resume, its
        # runner (started after the first paint) calls no server.
        task = asyncio.create_task(chat.run())
        await asyncio.wait_for(chat.started.wait(), 30)

        async def press(kind: str, key: str) -> None:
            await asyncio.sleep(0.002)  # let the previous key's work settle
            drawn.clear()
            before = sink.written
            started = time.perf_counter()
            keys.send_text(key)
            await asyncio.wait_for(drawn.wait(), 30)
            times.seconds.setdefault(kind, []).append(time.perf_counter() - started)
            times.written.append(sink.written - before)

        try:
            for n in range(typed // 2):
                await press("type", TYPED[n % len(TYPED)])
            for _ in range(pages):
                await press("PageUp", PAGE_UP)
            times.scroll_at_top = chat.store.state.scroll
            state = chat.store.state
            top = visible_rows(state, *state.pane)[0]
            times.top_row_at_top = "".join(fragment[1] for fragment in top)
            for n in range(typed - typed // 2):
                await press("type", TYPED[n % len(TYPED)])
            for _ in range(pages):
                await press("PageDown", PAGE_DOWN)
        finally:
            if chat.app.is_running:
                chat.app.exit()
            await task
    return times


# ---- the run -----------------------------------------------------------------


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def run(
    runs: int,
    messages: int,
    typed: int,
    pages: int,
    server: bool,
    err: Console,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Report:
    params = {
        "runs": runs,
        "messages": messages,
        "typed": typed,
        "pages": pages,
        "server": server,
        "size": f"{size[0]}x{size[1]}",
    }
    report = Report("chat", params, latency_label="first paint")
    started = time.monotonic()

    def say(text: str) -> None:
        err.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {text}")

    load_before = _load()
    command = crab_command()
    root = Path(tempfile.mkdtemp(prefix="crab-bench-chat-"))
    paints: dict[str, list[float]] = {"sign-in": [], "saved session": []}
    try:
        cases = [("sign-in", [*command, "chat", "--server", "127.0.0.1:1"], SIGN_IN_TEXT)]
        with contextlib.ExitStack() as stack:
            if server:
                config = root / "saved"
                say("starting crab serve for the saved-session start")
                target = stack.enter_context(saved_session(config))
                chat = [*command, "chat", "--server", target, "--config-dir", str(config)]
                cases.append(("saved session", chat, f" {USERNAME} @ {target} "))
            say(f"first paint: {' '.join(command)} chat, {runs} runs of each start (+1 unmeasured)")
            for n in range(runs + 1):
                for name, argv, expect in cases:
                    home = root / f"home-{name}-{n}".replace(" ", "-")
                    home.mkdir()
                    try:
                        took = first_paint(argv, client_env(home), expect, size)
                    except BenchError as error:
                        report.problems.append(f"{name} start {n}: {error}")
                        continue
                    if n:  # the first of each only warms the caches
                        paints[name].append(took)
        say(f"keys: {messages:,} messages, {typed} typed, {pages} x PageUp then PageDown")
        keys = asyncio.run(key_latencies(messages, typed, pages, root / "keys", size))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = _load()

    results: dict[str, Any] = {"first_paint_ms": {}, "keys_ms": {}}
    for name, starts in paints.items():
        if not starts:
            continue
        latency = Latency.of(starts)
        report.row(
            f"first paint: {name}",
            f"median {latency.p50:.0f} / p95 {latency.p95:.0f} / max {latency.max:.0f} ms",
            f"median < {FIRST_PAINT_TARGET_MS:.0f} ms",
            latency.p50 < FIRST_PAINT_TARGET_MS,
        )
        report.histograms[f"first paint, {name}"] = starts
        results["first_paint_ms"][name] = latency.to_json()
    for kind, presses in keys.seconds.items():
        latency = Latency.of(presses)
        report.row(
            f"key: {kind} ({latency.count}x)",
            f"p50 {latency.p50:.1f} / p99 {latency.p99:.1f} / max {latency.max:.1f} ms",
            f"p99 < {KEY_TARGET_MS:.0f} ms",
            latency.p99 < KEY_TARGET_MS,
        )
        results["keys_ms"][kind] = latency.to_json()
    written = sorted(keys.written)
    if written:
        report.row("characters drawn per key (median)", f"{written[len(written) // 2]:,}")
    results["scroll_at_top"] = keys.scroll_at_top
    results["top_row_at_top"] = keys.top_row_at_top
    results["load_average"] = {"before": load_before, "after": load_after}
    results["command"] = [*command, "chat"]
    report.results = results
    report.notes.append(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    report.notes.append(
        f"PageUp reached scroll {keys.scroll_at_top:,} of {messages:,} messages"
        + (" (the chat's top on the top row)" if "beginning" in keys.top_row_at_top else "")
    )
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        report.notes.append(
            "PYTHONDONTWRITEBYTECODE is set here; the clients ran without it (bytecode cache used)"
        )
    return report


def main(
    runs: int,
    messages: int,
    typed: int,
    pages: int,
    server: bool,
    as_json: bool,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> None:
    """`crab bench chat`: runs, prints (a table, or JSON), sets the exit status."""
    from crab_bench.cli import EXIT_ERROR, emit

    err = Console(stderr=True)
    # SIGTERM unwinds like Ctrl-C: the own server and any client stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        report = run(runs, messages, typed, pages, server, err, size)
    except BenchError as error:
        err.print(f"[red]bench error[/]: {error}", highlight=False)
        sys.exit(EXIT_ERROR)
    emit(report, as_json, err)
