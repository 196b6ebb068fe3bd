"""What every scripting command shares: the connection options, the saved
session (the one `crab chat` keeps, or --session-file), tokens refreshed as
`crab chat` refreshes them (crab/tui/account.py), and expected failures
turned into one line on stderr with an exit code, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import ssl
import stat
import sys
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import ProtocolError, StreamTerminatedError

from crab.client.connection import CrabClient
from crab.client.tls import tls_context
from crab.tui.account import Account
from crab.tui.saved import SessionFile, default_config_dir

T = TypeVar("T")

# Exit codes (README "Scripting" lists them).
EXIT_REFUSED = 1  # the server said no: unknown chat, too long, rate limited...
EXIT_USAGE = 2  # click's own code for bad options
EXIT_SIGNED_OUT = 3  # no saved session, or the server ended it
EXIT_UNREACHABLE = 4  # no server at that address, or it went away

# What a client sees when the server is not there or vanishes mid-call.
CONNECTION_LOST = (ConnectionError, OSError, StreamTerminatedError, ProtocolError)


class Failure(Exception):
    """An expected failure: `message` goes to stderr, `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    raise Failure(message, code)


def from_grpc(error: GRPCError) -> Failure:
    """A server's refusal as a Failure with the right exit code."""
    text = error.message or error.status.name.lower().replace("_", " ")
    if error.status is Status.UNAUTHENTICATED:
        return Failure(f"signed out: {text}; run `crab login`", EXIT_SIGNED_OUT)
    if error.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED):
        return Failure(f"server unavailable: {text}", EXIT_UNREACHABLE)
    return Failure(text, EXIT_REFUSED)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect and where the session is kept."""

    server: str
    host: str
    port: int
    tls: ssl.SSLContext | None
    sessions: SessionFile

    @classmethod
    def from_options(
        cls, server: str, tls: bool, ca: str | None, session_file: Path | None
    ) -> Target:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise click.UsageError(f"--server must be HOST:PORT, not {server!r}")
        if session_file is None:
            # Where `crab chat` keeps it (its --config-dir is CRAB_CONFIG_DIR too).
            folder = os.environ.get("CRAB_CONFIG_DIR")
            sessions = SessionFile(Path(folder) if folder else default_config_dir())
        else:
            sessions = SessionFile(session_file.parent)
            sessions.path = session_file  # the same format, at the path given
        context = tls_context(ca) if (tls or ca) else None
        return cls(server, host.strip("[]"), int(port), context, sessions)

    def client(self) -> CrabClient:
        return CrabClient(self.host, self.port, self.tls)


def _signed_out(reason: str) -> None:
    """Account's callback: the refresh token was refused (raised right after)."""


@contextlib.asynccontextmanager
async def signed_in(target: Target) -> AsyncIterator[Account]:
    """A client with the saved session's tokens (refreshed and saved again
    when the access token expires); closed on the way out."""
    client = target.client()
    account = Account(client, target.sessions, target.server, _signed_out)
    try:
        if account.restore() is None:
            fail(f"not signed in to {target.server}: run `crab login` first", EXIT_SIGNED_OUT)
        yield account
    finally:
        client.close()


def run_command(main: Coroutine[Any, Any, T]) -> T:
    """Runs a command's coroutine; an expected failure ends the process with
    one line on stderr and its exit code. Ctrl-C exits 0."""
    logging.getLogger().setLevel(logging.WARNING)  # stderr is for our one line
    logging.getLogger("grpclib").setLevel(logging.CRITICAL)
    stopped = asyncio.Event()
    try:
        return asyncio.run(_stoppable(main, stopped))
    except KeyboardInterrupt:
        sys.exit(0)
    except asyncio.CancelledError:
        if stopped.is_set():
            sys.exit(0)
        raise
    except Failure as error:
        _die(error.message, error.code)
    except GRPCError as error:
        found = from_grpc(error)
        _die(found.message, found.code)
    except CONNECTION_LOST as error:
        _die(f"cannot reach the server: {_reason(error)}", EXIT_UNREACHABLE)
    except ssl.SSLError as error:
        _die(f"TLS failed: {error.reason or error}", EXIT_UNREACHABLE)


async def _stoppable(main: Coroutine[Any, Any, T], stopped: asyncio.Event) -> T:
    """`main`, cancelled by Ctrl-C or SIGTERM (then the process exits 0)."""
    task = asyncio.current_task()
    assert task is not None

    def stop() -> None:
        stopped.set()
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    return await main


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"crab: {message}", err=True)
    sys.exit(code)


def exit_when_stdout_closes() -> None:
    """`crab tail | head -1`: exits when the reader goes, not only at the
    next write (which may be hours away). A pipe's writing end polls as an
    error once its reader has closed; only a pipe is watched."""
    fd = sys.stdout.fileno()
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return

    def check() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if any(events & select.POLLERR for _, events in poller.poll(0)):
            _quiet_exit()

    asyncio.get_running_loop().add_reader(fd, check)


def _quiet_exit() -> NoReturn:
    # Python would complain again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os._exit(0)


def write_line(line: str) -> None:
    """One line to stdout, flushed at once (a pipe sees it live). A closed
    pipe (`| head`) ends the process quietly, exit 0."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_exit()
