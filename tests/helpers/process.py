"""A real `crab serve` process for tests: started without a shell (so its pid
is the server's), its log read line by line on a thread, waited on by log
line or exit, and always stopped at the end.

    with CrabProcess.start(data_dir) as server:
        client = CrabClient("127.0.0.1", server.port)
        ...
        server.terminate()          # SIGTERM, or server.kill() for SIGKILL
        assert server.wait() == 0

`run_crab("user", "list", ...)` runs a short-lived `crab` command.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.helpers.services import free_port

LISTENING = re.compile(r"crab listening on (grpcs?)://(\S+):(\d+);")
START_TIMEOUT = 30.0

# High enough that only a test about rate limits would meet them.
FAST_SEND = ("--send-rate", "100000", "--send-burst", "100000")
# For tests that legitimately sign up, create or invite more than a team
# would from one address (every test client is 127.0.0.1), as environment.
LIFTED_LIMITS = {
    f"CRAB_{name}": "1000000/s"
    for name in (
        "SIGNUP_LIMIT",
        "ROOM_LIMIT",
        "ROOM_LIMIT_PER_ADDRESS",
        "INVITE_LIMIT",
        "INVITE_LIMIT_PER_ADDRESS",
        "RENAME_LIMIT",
        "TOPIC_LIMIT",
        "REMOVE_MEMBER_LIMIT",
        "DISPLAY_NAME_LIMIT",
        "PASSWORD_CHANGE_LIMIT",
    )
} | {"CRAB_HASH_QUEUE": "100000", "CRAB_HASH_QUEUE_PER_ADDRESS": "100000"}


def crab_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any CRAB_* setting (so the caller's
    shell cannot leak into a test), with cheap password hashing, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAB_")}
    env["CRAB_PASSWORD_HASHING"] = "cheap"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def crab_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "crab.cli", *args]


def run_crab(
    *args: str,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Runs `crab ARGS...` to the end; returns its exit code and output."""
    return subprocess.run(
        crab_command(*args),
        input=input,
        capture_output=True,
        text=True,
        env=crab_env(env),
        timeout=timeout,
        check=False,
    )


def _limit_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class CrabProcess:
    """One `crab serve` process and its log (stdout and stderr together)."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        open_files: int | None = None,
    ) -> None:
        """open_files: the server's open-file limit, soft and hard (as on a
        machine that allows only that many)."""
        self.args = list(args)
        self.lines: list[str] = []
        self._changed = threading.Condition(threading.RLock())
        self._eof = False
        self.port = 0
        self.host = ""
        self.proc = subprocess.Popen(
            crab_command(*self.args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=crab_env(env),
            preexec_fn=None if open_files is None else lambda: _limit_files(open_files),
        )
        self._reader = threading.Thread(target=self._read, name="crab-log", daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls,
        data_dir: Path | None,
        *extra: str,
        env: Mapping[str, str] | None = None,
        port: int | None = 0,
        fast_send: bool = True,
        timeout: float = START_TIMEOUT,
        open_files: int | None = None,
    ) -> CrabProcess:
        """`crab serve` (on a free port unless told), waited on until it listens.
        data_dir None or port None: left to the environment / defaults."""
        args = ["serve"]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        if port is not None:
            args += ["--port", str(port)]
        if fast_send:
            args += FAST_SEND
        server = cls([*args, *extra], env, open_files)
        try:
            server.wait_listening(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    # ---- the log -------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0, times: int = 1
    ) -> re.Match[str]:
        """The first log line matching `pattern` (the `times`-th if asked;
        waits for it to be logged). Fails at once if the process ends without
        logging it."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = found = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if (match := regex.search(line)) and (found := found + 1) == times:
                        return match
                seen = len(self.lines)
                if self._eof:
                    raise AssertionError(
                        f"crab exited ({self.proc.wait()}) without logging {regex.pattern!r}:\n"
                        f"{self.log}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no log line {regex.pattern!r} within {timeout}s:\n{self.log}"
                    )
                self._changed.wait(left)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> int:
        match = self.wait_for_line(LISTENING, timeout)
        self.host, self.port = match.group(2), int(match.group(3))
        return self.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---- stopping ------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def terminate(self) -> None:
        """SIGTERM: the graceful shutdown."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash or an OOM kill."""
        self.proc.send_signal(signal.SIGKILL)

    def wait(self, timeout: float = 10.0) -> int:
        """The exit code, once the process has ended and its log is read to the end."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self) -> None:
        """Ends the process however it has to (SIGTERM, then SIGKILL)."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> CrabProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = [
    "FAST_SEND",
    "LIFTED_LIMITS",
    "LISTENING",
    "CrabProcess",
    "crab_command",
    "crab_env",
    "free_port",
    "run_crab",
]


class Servers(list[CrabProcess]):
    """The `crab serve` processes a test started: all stopped at its end
    (the `servers` fixture), whatever happened."""

    async def start(self, data_dir: Path, *extra: str) -> CrabProcess:
        """A `crab serve` on a free port, listening (waited for off the event loop)."""
        server = await asyncio.to_thread(CrabProcess.start, data_dir, *extra)
        self.append(server)
        return server

    def stop(self) -> None:
        for server in self:
            server.stop()
