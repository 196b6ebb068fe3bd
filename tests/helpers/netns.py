"""A private network namespace for tests that need real, non-loopback
interfaces: libnice (Janus) never offers loopback ICE candidates, so Janus
and its WebRTC clients run together in a namespace of their own, joined by
a veth pair whose two ends carry the addresses they gather.

Needs root and `ip` (iproute2). `network_namespace()` creates the namespace
and removes it on every path; processes started in it with `in_namespace()`
must be ended by their owner before it goes (the fixture in
tests/helpers/janus.py does)."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.helpers.services import which

_numbers = itertools.count(1)


@dataclass(frozen=True)
class NetNamespace:
    name: str
    addresses: tuple[str, str]  # the two ends of the veth pair

    def command(self, *args: str) -> list[str]:
        """`args` run inside the namespace (`ip netns exec` execs them, so
        the pid Popen reports is the program's own)."""
        return ["ip", "netns", "exec", self.name, *args]


def namespaces_usable() -> str | None:
    """Why a namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if which("ip") is None:
        return "`ip` (iproute2) is not installed"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def remove_stale_namespaces() -> None:
    """Namespaces left by a test run that was killed (named after its pid)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "crabtest" and parts[1].isdigit():
            if not os.path.exists(f"/proc/{parts[1]}"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@contextlib.contextmanager
def network_namespace() -> Iterator[NetNamespace]:
    """A fresh namespace with lo up and a veth pair v0/v1 addressed on a
    private /24; `accept_local` lets each end accept packets from the other
    address, which the kernel sees as its own."""
    remove_stale_namespaces()
    number = next(_numbers)
    name = f"crabtest-{os.getpid()}-{number}"
    subnet = f"10.{200 + (os.getpid() % 50)}.{number % 250}"
    addresses = (f"{subnet}.1", f"{subnet}.2")
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for device, address in zip(("v0", "v1"), addresses, strict=True):
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", device)
            _ip("-n", name, "link", "set", device, "up")
        for key in ("all", "v0", "v1"):
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    name,
                    "sysctl",
                    "-qw",
                    f"net.ipv4.conf.{key}.accept_local=1",
                ],
                check=True,
                timeout=10,
            )
        yield NetNamespace(name, addresses)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
