"""The scriptable `crab` driven as a script drives it: the installed
command run as a subprocess (`crab`), a room set up by real clients, what
bob reads back, and a running `crab tail` read line by line (`Lines`)."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crab.client.connection import CrabClient
from crab.proto.crab import v1 as pb
from tests.helpers.process import CrabProcess, crab_env
from tests.helpers.server import PASSWORD

CRAB = Path(sys.executable).parent / "crab"  # the installed command
LINE_TIMEOUT = 20.0


def crab(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CRAB), *args],
        input=input,
        capture_output=True,
        text=True,
        env=crab_env(env),
        timeout=60.0,
        check=False,
    )


@dataclass
class World:
    """A server, alice (signed in with `crab login`) and bob (a client)."""

    server: CrabProcess
    session_file: Path
    room_id: int
    bob_id: int

    @property
    def options(self) -> list[str]:
        return ["--server", self.server.target, "--session-file", str(self.session_file)]

    def crab(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return crab(args[0], *self.options, *args[1:], input=input)


async def client_for(
    port: int, name: str, sign_up: bool = False, tls: ssl.SSLContext | None = None
) -> CrabClient:
    client = CrabClient("127.0.0.1", port, tls)
    if sign_up:
        await client.sign_up(name, PASSWORD)
    else:
        await client.sign_in(name, PASSWORD)
    return client


async def set_up(port: int, tls: ssl.SSLContext | None = None) -> tuple[int, int]:
    """alice owns room `general` with bob in it, and invited bob to a
    personal conversation (pending)."""
    alice = await client_for(port, "alice", sign_up=True, tls=tls)
    bob = await client_for(port, "bob", sign_up=True, tls=tls)
    try:
        room = await alice.create_room("general")
        invite = await alice.invite_to_room(room.id, bob.user.id)
        await bob.answer_invite(invite.id, accept=True)
        await alice.invite_to_direct(bob.user.id)
        return room.id, bob.user.id
    finally:
        alice.close()
        bob.close()


def texts_in(port: int, chat_id: int) -> list[str]:
    """Every message of the chat as bob reads it, oldest first."""

    async def read() -> list[str]:
        bob = await client_for(port, "bob")
        try:
            page = await bob.history(chat_id, limit=200)
            return [m.text for m in reversed(page.messages)]
        finally:
            bob.close()

    return asyncio.run(read())


def bob_sends(port: int, chat_id: int, *texts: str) -> None:
    async def send() -> None:
        bob = await client_for(port, "bob")
        try:
            async with bob.session() as live:
                for text in texts:
                    await live.wait_for(_ack_of(await live.send(chat_id, text)))
        finally:
            bob.close()

    asyncio.run(send())


def _ack_of(cid: str) -> Callable[[pb.ServerFrame], bool]:
    return lambda f: f.ack is not None and f.ack.client_message_id == cid


def start_server(data_dir: Path, port: int = 0) -> CrabProcess:
    return CrabProcess.start(data_dir, port=port, env={"CRAB_SIGNUP_LIMIT": "1000/s"})


class Lines:
    """A running `crab tail`: its stdout read line by line on a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(CRAB), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=crab_env(),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self) -> str:
        try:
            line = self._lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no line from crab tail within {LINE_TIMEOUT}s") from None
        assert line is not None, f"crab tail ended: {self.stop()}"
        return line

    def records(self, count: int) -> list[dict[str, Any]]:
        return [json.loads(self.next()) for _ in range(count)]

    def nothing_more(self) -> bool:
        try:
            self._lines.get(timeout=1.0)
        except queue.Empty:
            return True
        return False

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        assert self.proc.stderr is not None and self.proc.stdout is not None
        errors = self.proc.stderr.read()
        self.proc.stderr.close()
        self._reader.join(5)
        self.proc.stdout.close()
        return code, errors
