"""Real services for tests, started by the tests themselves (see
shared/SERVICES.md): nothing is assumed to be running on the machine.

`rabbitmq_url` starts a private RabbitMQ node for the test session, on
loopback, on free ports, with its data in a temporary folder, and stops it
at the end. Without `rabbitmq-server` installed the tests that need it are
skipped, except in CI (CI=true), where they fail: CI never silently skips
a service test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

START_TIMEOUT = 90.0


def which(name: str) -> str | None:
    """A program on PATH, or in /usr/sbin (where Debian puts RabbitMQ's,
    and which a non-login PATH may lack)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def missing_service(reason: str) -> None:
    """Skips, or fails in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: service tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class RabbitMQ:
    """One private node. Its environment is also what `rabbitmqctl` needs
    to find it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.epmd_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": f"crabtest-{uuid.uuid4().hex[:8]}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            # Nothing from /etc/rabbitmq: no plugins (and their ports), no config.
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }
        self.epmd: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    def start(self) -> None:
        began = time.monotonic()
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text("")
        (self.base / "rabbitmq-env.conf").write_text("")
        subprocess.run(["chown", "-R", "rabbitmq:", str(self.base)], check=True)
        # Our own epmd, on its own port: we know its pid, and it never meets
        # another project's epmd. The node finds it through ERL_EPMD_PORT.
        self.epmd = subprocess.Popen(
            [which("epmd") or "epmd", "-address", "127.0.0.1", "-port", str(self.epmd_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for(lambda: _port_open(self.epmd_port), "epmd")
        # As root: the Debian wrapper switches to the rabbitmq user itself.
        subprocess.run(
            [which("rabbitmq-server") or "rabbitmq-server", "-detached"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_for(lambda: _port_open(self.port), "the AMQP port")
        self.started_in = time.monotonic() - began

    def _wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            pid = self._pid()
            if pid is not None and not _alive(pid):
                raise RuntimeError(f"RabbitMQ exited while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} after {START_TIMEOUT:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def _pid(self) -> int | None:
        try:
            return int((self.base / "rabbit.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        text = []
        for log in sorted((self.base / "log").glob("*.log")):
            text.append(f"--- {log.name}")
            text.extend(log.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(text) or "(no log)"

    def stop(self) -> None:
        pid = self._pid()
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [which("rabbitmqctl") or "rabbitmqctl", "shutdown"],
                env=self.env,
                timeout=60,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if pid is not None and _alive(pid):  # shutdown failed: end it by its pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.epmd is not None:
            self.epmd.terminate()
            try:
                self.epmd.wait(10)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The AMQP URL of a RabbitMQ node private to this test session."""
    if which("rabbitmq-server") is None or which("epmd") is None:
        missing_service("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    if os.geteuid() != 0:
        missing_service("starting rabbitmq-server needs root (the wrapper switches user)")
    base = Path(tempfile.mkdtemp(prefix="crab-rabbitmq-"))
    node = RabbitMQ(base)
    try:
        try:
            node.start()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            pytest.fail(f"could not start RabbitMQ: {exc}", pytrace=False)
        print(f"\nRabbitMQ ready in {node.started_in:.1f}s at {node.url}")
        yield node.url
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)
