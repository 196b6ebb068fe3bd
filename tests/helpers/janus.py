"""A private Janus (Debian's `janus`, VideoRoom plugin, HTTP API) for the
group-call tests, in a private network namespace (tests/helpers/netns.py):
libnice offers no loopback candidates, so Janus and the aiortc clients meet
on a veth pair instead.

The configuration is generated into a temporary folder: only the VideoRoom
plugin and the HTTP transport are loaded (folders of symlinks to those two
libraries), so Janus starts in well under a second. The test process stays
in its own namespace; whatever talks to Janus runs inside the namespace
too, through `JanusServer.run_python` (a module that prints JSON)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.netns import NetNamespace, namespaces_usable, network_namespace
from tests.helpers.services import missing_service, which

# Debian's multiarch folder (x86_64-linux-gnu, aarch64-linux-gnu...), or a source build's.
LIBRARIES = next(
    (
        folder
        for folder in (*sorted(Path("/usr/lib").glob("*/janus")), Path("/opt/janus/lib/janus"))
        if (folder / "plugins").is_dir()
    ),
    Path("/usr/lib/janus"),
)
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
HTTP_PORT = 8088  # the namespace is private: no other program can hold it

JANUS_JCFG = """\
general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder}/plugins"
    transports_folder = "{folder}/transports"
    events_folder = "{folder}/events"
    loggers_folder = "{folder}/loggers"
    debug_level = 4
    session_timeout = 60
    protected_folders = ["/bin", "/etc", "/proc", "/sys", "/usr"]
{auth}}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    nice_debug = false
}}
plugins: {{}}
transports: {{}}
events: {{}}
loggers: {{}}
"""

HTTP_JCFG = """\
general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {port}
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"""

TOKEN_AUTH = """\
    token_auth = true
    token_auth_secret = "{secret}"
"""


VIDEOROOM_JCFG = """\
general: {
}
"""


def janus_missing() -> str | None:
    """Why Janus cannot run here, or None."""
    why = namespaces_usable()
    if why is not None:
        return why
    if which("janus") is None:
        return "janus is not installed (apt-get install janus)"
    for library in ("plugins/libjanus_videoroom.so", "transports/libjanus_http.so"):
        if not (LIBRARIES / library).exists():
            return f"janus has no {LIBRARIES / library}"
    return None


def write_config(folder: Path, port: int, token_secret: str | None = None) -> Path:
    """Janus's three configuration files and its library folders."""
    for kind, library in (
        ("plugins", "libjanus_videoroom.so"),
        ("transports", "libjanus_http.so"),
        ("events", None),
        ("loggers", None),
    ):
        (folder / kind).mkdir()
        if library is not None:
            (folder / kind / library).symlink_to(LIBRARIES / kind / library)
    main = folder / "janus.jcfg"
    auth = "" if token_secret is None else TOKEN_AUTH.format(secret=token_secret)
    main.write_text(JANUS_JCFG.format(folder=folder, auth=auth))
    (folder / "janus.transport.http.jcfg").write_text(HTTP_JCFG.format(port=port))
    (folder / "janus.plugin.videoroom.jcfg").write_text(VIDEOROOM_JCFG)
    return main


@dataclass
class JanusServer:
    namespace: NetNamespace
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.namespace.addresses[0]}:{HTTP_PORT}/janus"

    def run_python(self, module: str, *args: str, timeout: float = 60.0) -> dict[str, object]:
        """`python -m module args` inside the namespace, from the repository
        root; its last stdout line is JSON, returned parsed."""
        command = self.namespace.command(sys.executable, "-m", module, *args)
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=_env()
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise AssertionError(
                f"{module} {args} exited {done.returncode}\n"
                f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}\n"
                f"janus log:\n{self.log_tail()}"
            )
        result: dict[str, object] = json.loads(lines[-1])
        return result

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def _wait_ready(namespace: NetNamespace, process: subprocess.Popen[bytes], log: Path) -> None:
    """Polls the HTTP port from inside the namespace (one small Python
    program, which also fails fast if Janus exits)."""
    probe = (
        "import socket, sys, time\n"
        f"end = time.monotonic() + {START_TIMEOUT}\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        f"        socket.create_connection(({namespace.addresses[0]!r}, {HTTP_PORT}), 0.2).close()\n"
        "        sys.exit(0)\n"
        "    except OSError:\n"
        "        time.sleep(0.05)\n"
        "sys.exit(1)\n"
    )
    waiter = subprocess.Popen(namespace.command(sys.executable, "-c", probe))
    try:
        deadline = time.monotonic() + START_TIMEOUT + 5
        while waiter.poll() is None:
            if process.poll() is not None:
                raise RuntimeError(f"janus exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError("janus readiness probe hung")
            time.sleep(0.05)
        if waiter.returncode != 0:
            raise RuntimeError(f"janus did not open its HTTP port:\n{log.read_text()}")
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # Janus's clean shutdown
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def private_janus(token_secret: str | None = None) -> Iterator[JanusServer]:
    """Janus in a fresh namespace; skips (or fails under CI=true) when it
    cannot run here. With `token_secret`, every request needs a signed
    token (`janus_token`). Janus is stopped and the namespace removed on
    every path."""
    why = janus_missing()
    if why is not None:
        missing_service(why)
    with tempfile.TemporaryDirectory(prefix="crab-janus-") as tmp, network_namespace() as ns:
        folder = Path(tmp)
        main = write_config(folder, HTTP_PORT, token_secret)
        log = folder / "janus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ns.command("janus", "-C", str(main), "-F", str(folder), "-o", "-N", "-L", str(log)),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(ns, process, log)
            yield JanusServer(ns, process, log)
        finally:
            _stop(process)


DEPLOY = REPO / "deploy" / "janus"


@contextlib.contextmanager
def deployed_janus(token_secret: str) -> Iterator[JanusServer]:
    """Janus as deploy/janus's image runs it: its configuration files and
    entrypoint.sh (which writes the token secret into janus.jcfg), with
    JANUS_HOME a temporary folder laid out as the image's /opt/janus."""
    why = janus_missing()
    if why is not None:
        missing_service(why)
    with tempfile.TemporaryDirectory(prefix="crab-janus-deploy-") as tmp, network_namespace() as ns:
        home = Path(tmp)
        for kind, library in (
            ("plugins", "libjanus_videoroom.so"),
            ("transports", "libjanus_http.so"),
        ):
            (home / kind).mkdir()
            (home / kind / library).symlink_to(LIBRARIES / kind / library)
        for kind in ("events", "loggers"):
            (home / kind).mkdir()
        for path in DEPLOY.iterdir():
            if path.suffix in (".jcfg", ".sh"):
                (home / path.name).write_bytes(path.read_bytes())
        env = {
            **os.environ,
            "JANUS_HOME": str(home),
            "JANUS_CONF": str(home / "conf"),
            "JANUS_TOKEN_AUTH_SECRET": token_secret,
        }
        log = home / "janus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ns.command("sh", str(home / "entrypoint.sh")),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            _wait_ready(ns, process, log)
            yield JanusServer(ns, process, log)
        finally:
            _stop(process)
