"""Real services for tests, started by the tests themselves (see
shared/SERVICES.md): nothing is assumed to be running on the machine.

`rabbitmq_url` starts a private RabbitMQ node for the test session, on
loopback, on free ports, with its data in a temporary folder, and stops it
at the end. Without `rabbitmq-server` installed the tests that need it are
skipped, except in CI (CI=true), where they fail: CI never silently skips
a service test.

`postgres_url` does the same for PostgreSQL: a private server (initdb into a
temporary folder owned by `postgres`, trust auth, loopback, a free port),
stopped at the end. `pg_databases` hands out fresh databases on it
(`crab_<n>`), dropped after the test: `pg_database_url` is an empty one,
`pg_crab_database_url` one with crab's schema (cloned from a template).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
        # A restarted node (stop_node, then start) finds it still running.
        if self.epmd is None or self.epmd.poll() is not None:
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

    def stop_node(self) -> None:
        """Stops the node only (its data and epmd stay): `start` brings it
        back on the same port, with its durable queues and messages."""
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
        # A pid file left behind would read as "exited while starting" next time.
        (self.base / "rabbit.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        self.stop_node()
        if self.epmd is not None:
            self.epmd.terminate()
            try:
                self.epmd.wait(10)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait()


@contextlib.contextmanager
def private_rabbitmq(prefix: str = "crab-rabbitmq-") -> Iterator[RabbitMQ]:
    """A RabbitMQ node of its own, started, and stopped at the end. Its data
    is in a folder from tempfile.mkdtemp: the rabbitmq user cannot enter
    pytest's tmp_path."""
    if which("rabbitmq-server") is None or which("epmd") is None:
        missing_service("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    if os.geteuid() != 0:
        missing_service("starting rabbitmq-server needs root (the wrapper switches user)")
    base = Path(tempfile.mkdtemp(prefix=prefix))
    node = RabbitMQ(base)
    try:
        try:
            node.start()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            pytest.fail(f"could not start RabbitMQ: {exc}", pytrace=False)
        print(f"\nRabbitMQ ready in {node.started_in:.1f}s at {node.url}")
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The AMQP URL of a RabbitMQ node private to this test session."""
    with private_rabbitmq() as node:
        yield node.url


# ---- PostgreSQL -------------------------------------------------------------------


def pg_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them off PATH, in
    /usr/lib/postgresql/<major>/bin (the newest major wins)."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


class PostgreSQL:
    """One private server. As root, it runs as the `postgres` user (initdb
    refuses root); otherwise as whoever runs the tests."""

    def __init__(self, base: Path, bindir: Path) -> None:
        self.base = base
        self.bindir = bindir
        self.data = base / "data"
        self.port = 0
        self.started_in = 0.0
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            command,
            check=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        began = time.monotonic()
        (self.base / "sock").mkdir()
        if self.as_root:
            subprocess.run(["chown", "-R", "postgres:", str(self.base)], check=True)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        for attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            try:
                self._pg_ctl_start()
                break
            except subprocess.CalledProcessError:
                if attempt == 2 or not _port_open(self.port):  # not a taken port
                    raise
        self.started_in = time.monotonic() - began

    def _pg_ctl_start(self) -> None:
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            f"-k {self.base / 'sock'}",
            # A throwaway server: durability buys the tests nothing.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        ]
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
            "-o", " ".join(options), "-w", "-t", str(int(START_TIMEOUT)), "start",
        )  # fmt: skip

    def start_again(self) -> None:
        """After `stop`: the same server, port and data (a restart)."""
        self._pg_ctl_start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.base / "server.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
        try:  # stop failed: end the postmaster by its pid
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        # SIGQUIT: immediate shutdown, the postmaster ends its backends too.
        for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 0.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(pid):
                return


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL (asyncpg) of the `postgres` database on a
    PostgreSQL server private to this test session."""
    bindir = pg_bindir()
    if bindir is None:
        missing_service("PostgreSQL is not installed (apt-get install postgresql)")
    assert bindir is not None
    base = Path(tempfile.mkdtemp(prefix="crab-postgres-"))
    server = PostgreSQL(base, bindir)
    try:
        try:
            server.start()
        except subprocess.CalledProcessError as exc:
            output = exc.output.decode(errors="replace") if exc.output else ""
            pytest.fail(
                f"could not start PostgreSQL: {exc}\n{output}\n{server.log_tail()}",
                pytrace=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"could not start PostgreSQL: {exc}\n{server.log_tail()}", pytrace=False)
        print(f"\nPostgreSQL ready in {server.started_in:.1f}s at {server.url}")
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


_databases = itertools.count(1)
# postgres_url -> the name of a database migrated to crab's schema, once per
# session, that fresh migrated databases are cloned from (~0.05 s, against
# ~0.25 s to create one and migrate it).
_templates: dict[str, str] = {}
NewDatabase = Callable[..., Awaitable[str]]


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def _create_database(postgres_url: str, name: str, template: str | None = None) -> None:
    import asyncpg

    copy = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(_libpq_url(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await admin.close()


async def _template(postgres_url: str) -> str:
    """A database with crab's schema at its head, made (by `migrate`) once."""
    if postgres_url not in _templates:
        from crab.core.storage.database import Database

        name = f"crab_template_{os.getpid()}"
        await _create_database(postgres_url, name)
        database = Database(_database_url(postgres_url, name))
        try:
            await database.migrate()
        finally:
            await database.close()  # a template must have no connections
        _templates[postgres_url] = name
    return _templates[postgres_url]


@pytest.fixture
async def pg_databases(postgres_url: str) -> AsyncIterator[NewDatabase]:
    """new() -> the URL of a fresh, empty database; new(migrated=True): one
    with crab's schema already at its head. All are dropped after the test
    (WITH (FORCE): a connection left open does not block it)."""
    import asyncpg

    made: list[str] = []

    async def new(migrated: bool = False) -> str:
        template = await _template(postgres_url) if migrated else None
        name = f"crab_{os.getpid()}_{next(_databases)}"
        await _create_database(postgres_url, name, template)
        made.append(name)
        return _database_url(postgres_url, name)

    yield new
    if made:
        admin = await asyncpg.connect(_libpq_url(postgres_url))
        try:
            for name in made:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_database_url(pg_databases: NewDatabase) -> str:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    return await pg_databases()


@pytest.fixture
async def pg_crab_database_url(pg_databases: NewDatabase) -> str:
    """The URL of a fresh PostgreSQL database with crab's schema, dropped
    after the test (for crab itself: its `migrate` finds nothing to do)."""
    return await pg_databases(migrated=True)
