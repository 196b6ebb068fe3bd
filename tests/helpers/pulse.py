"""A private PulseAudio for the device tests (shared/SERVICES.md): two null
sinks, "mic" (whose monitor stands in for a microphone) and "spk" (a
speaker whose monitor a test records), its socket and state in a temporary
folder, stopped by its pid at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.helpers.services import missing_service, which

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Pulse:
    base: Path
    env: dict[str, str]  # what a client of this server needs

    def run(self, *argv: str, output: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
        """A client of this server; its output to `output` (stderr too)."""
        return subprocess.Popen(
            list(argv), env={**os.environ, **self.env}, stdout=output, stderr=subprocess.STDOUT
        )


@contextlib.contextmanager
def private_pulse() -> Iterator[Pulse]:
    programs = {name: which(name) for name in ("pulseaudio", "pactl", "paplay", "parec")}
    missing = [name for name, path in programs.items() if path is None]
    if missing:
        missing_service(
            f"{', '.join(missing)} missing (apt-get install pulseaudio pulseaudio-utils)"
        )
    base = Path(tempfile.mkdtemp(prefix="crab-pulse-"))
    run, home = base / "run", base / "home"
    run.mkdir(mode=0o700)
    home.mkdir()
    socket = run / "native"
    env = {"XDG_RUNTIME_DIR": str(run), "HOME": str(home), "PULSE_SERVER": f"unix:{socket}"}
    pulse = Pulse(base, env)
    log = (base / "pulse.log").open("wb")
    server = pulse.run(
        "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
        "--system=false", "--use-pid-file=false",
        "-L", f"module-native-protocol-unix socket={socket} auth-anonymous=1",
        "-L", "module-null-sink sink_name=spk",
        "-L", "module-null-sink sink_name=mic",
        output=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while pulse.run("pactl", "info", output=subprocess.DEVNULL).wait():
            if server.poll() is not None or time.monotonic() > deadline:
                text = (base / "pulse.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"PulseAudio did not start ({server.poll()}):\n{text}")
            time.sleep(0.05)
        yield pulse
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pulse(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pulse]:
    """The server, and this process pointed at it (PortAudio's "pulse"
    device reads the environment when a stream opens)."""
    with private_pulse() as server:
        for name, value in server.env.items():
            if name != "HOME":
                monkeypatch.setenv(name, value)
        # crab's "pulse:NAME" devices set these: restore them after the test.
        for name in ("PULSE_SOURCE", "PULSE_SINK"):
            monkeypatch.setenv(name, "")  # so that teardown restores it
            monkeypatch.delenv(name)
        yield server
