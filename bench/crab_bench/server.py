"""The server under test: the bench's own `crab serve` (a separate process,
memory broker, SQLite in a temporary directory) or a running one
(--target), and a psutil probe of its memory and CPU."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

LISTENING = re.compile(r"crab listening on grpcs?://(\S+):(\d+);")
START_TIMEOUT = 60.0
# Sends as fast as the server takes them: the bench measures, not the limiter.
# Throughput workloads run thousands of clients from one address: the
# limits meant for strangers would be what they measure.
FAST_SEND = ("--send-rate", "1000000", "--send-burst", "1000000")
LIFTED_CONNECTIONS = (
    "--max-connections",
    "100000",
    "--max-connections-per-address",
    "100000",
)
# Every load generator is on 127.0.0.1, one address: the per-address limits
# on sign-ups, rooms, invites and concurrent password checks are lifted too.
LIFTED_LIMITS = (
    *("--signup-limit", "1000000/s", "--room-limit", "1000000/s"),
    *("--room-limit-per-address", "1000000/s", "--invite-limit", "1000000/s"),
    *("--invite-limit-per-address", "1000000/s", "--search-limit", "1000000/s"),
    *("--hash-queue", "100000", "--hash-queue-per-address", "100000"),
    # `crab bench call` starts, answers and hangs up 20 calls in seconds.
    *("--call-limit", "1000000/s", "--call-signal-limit", "1000000/s"),
)


class BenchError(Exception):
    """The bench could not run (as opposed to: it ran and found a fault)."""


def raise_open_files(needed: int) -> str | None:
    """Raises this process's open-file limit (inherited by the load generators
    and the bench's own server) to at least `needed`; returns what it did."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    new_hard = hard
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:  # root (CAP_SYS_RESOURCE) may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, needed))
            new_hard = needed
        except (ValueError, OSError):
            pass
    new_soft = needed if new_hard == resource.RLIM_INFINITY else min(needed, new_hard)
    if new_soft <= soft:
        return f"open-file limit stays at {soft} (the hard limit); {needed} wanted"
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
    note = f"raised the open-file limit from {soft} to {new_soft}"
    if new_soft < needed:
        note += f" (the hard limit; {needed} wanted: expect connection failures)"
    return note


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the bench dies (Linux), so a
    killed bench leaves no server behind."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _child_setup(open_files: int | None) -> Callable[[], None]:
    """What runs in the server's process before exec: die with the bench,
    and with `open_files`, start with that soft open-file limit (what a
    shell would hand the server) instead of the bench's raised one."""

    def setup() -> None:
        _die_with_parent()
        if open_files is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            soft = open_files if hard == resource.RLIM_INFINITY else min(open_files, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return setup


@dataclass
class Endpoint:
    host: str
    port: int
    pid: int | None  # None: the server's memory and CPU cannot be measured


class OwnServer:
    """`crab serve` in a temporary data directory, started and stopped by the bench."""

    def __init__(
        self,
        password_hashing: str,
        data_dir: Path | None = None,
        open_files: int | None = None,
        default_limits: bool = False,
    ) -> None:
        self.password_hashing = password_hashing
        self.default_limits = default_limits
        self.open_files = open_files  # the server's soft limit; None: the bench's
        self.root = Path(tempfile.mkdtemp(prefix="crab-bench-"))
        self.data_dir = data_dir or self.root / "data"
        self.log_path = self.root / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Endpoint:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAB_")}
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            sys.executable,
            "-m",
            "crab.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(self.data_dir),
            "--password-hashing",
            self.password_hashing,
            *FAST_SEND,
            # `crab bench abuse` meets the limits a team would run with.
            *(() if self.default_limits else (*LIFTED_CONNECTIONS, *LIFTED_LIMITS)),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_child_setup(self.open_files),  # runs before exec
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log())
            if found:
                return Endpoint(found.group(1), int(found.group(2)), self.process.pid)
            if self.process.poll() is not None:
                raise BenchError(f"crab serve exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"crab serve did not start within {START_TIMEOUT:.0f}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Sample:
    at: float  # time.time()
    rss: int  # bytes
    cpu: float  # user + system seconds since the process started


class ServerProbe:
    """Samples the server's RSS and CPU time every `interval` seconds on a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self._process = psutil.Process(pid)
        self._interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-probe", daemon=True)
        self._thread.start()

    def sample(self) -> Sample:
        with self._process.oneshot():
            times = self._process.cpu_times()
            return Sample(time.time(), self._process.memory_info().rss, times.user + times.system)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.samples.append(self.sample())
            except psutil.Error:
                return

    def peak_rss(self, start: float, end: float) -> int:
        found = [s.rss for s in self.samples if start <= s.at <= end]
        return max(found, default=0)

    def high_water_mark(self) -> int | None:
        """VmHWM: the most RSS the process ever had (Linux only)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
