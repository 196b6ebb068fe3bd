"""A private coturn for call tests (shared/SERVICES.md): loopback only, a
free port, the shared-secret scheme crab hands credentials out in, its
files in a temporary folder; stopped by its pid at the end."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.services import _port_open, free_port, missing_service, which

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Coturn:
    url: str  # turn:127.0.0.1:PORT
    secret: str
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@contextlib.contextmanager
def private_coturn() -> Iterator[Coturn]:
    program = which("turnserver")
    if program is None:
        missing_service("coturn is not installed (apt-get install coturn)")
        raise AssertionError  # unreachable: missing_service skips or fails
    base = Path(tempfile.mkdtemp(prefix="crab-coturn-"))
    port = free_port()
    secret = secrets.token_hex(16)
    server = Coturn(f"turn:127.0.0.1:{port}", secret, base / "turn.log")
    process = subprocess.Popen(
        [
            program, "-n",
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--use-auth-secret", f"--static-auth-secret={secret}", "--realm=crab",
            "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls",
            f"--log-file={server.log}", "--simple-log",
            f"--pidfile={base / 'turn.pid'}", f"--userdb={base / 'turndb'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # It listens on TCP and UDP together: TCP is the one we can probe.
        while not _port_open(port):
            if process.poll() is not None:
                pytest.fail(f"turnserver exited ({process.returncode}):\n{server.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"turnserver not listening after {START_TIMEOUT} s:\n{server.log_tail()}"
                )
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def coturn() -> Iterator[Coturn]:
    with private_coturn() as server:
        yield server
