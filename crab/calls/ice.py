"""ICE settings for a call: which local addresses to gather, and the STUN /
TURN servers the crab server handed out, as aiortc's RTCConfiguration."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from crab.core.services.turn import IceServer

ENV_ICE_HOSTS = "CRAB_ICE_HOSTS"


def parse_hosts(value: str) -> list[str]:
    """ "127.0.0.1, 10.0.0.2" -> the addresses; a word that is not an IP
    address is an error, as a typo would otherwise silently mean "no host
    candidates"."""
    hosts: list[str] = []
    for word in value.split(","):
        word = word.strip()
        if not word:
            continue
        try:
            hosts.append(str(ipaddress.ip_address(word)))
        except ValueError:
            raise ValueError(f"{ENV_ICE_HOSTS}: {word!r} is not an IP address") from None
    return hosts


def use_ice_hosts_from_env() -> None:
    """CRAB_ICE_HOSTS="127.0.0.1,10.0.0.2": gather host candidates exactly on
    these addresses. aioice leaves 127.0.0.1 out of its own list, so loopback
    calls (tests) need this. Idempotent; does nothing when the variable is
    unset or empty."""
    hosts = parse_hosts(os.environ.get(ENV_ICE_HOSTS, ""))
    if not hosts:
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            host for host in hosts if (use_ipv4 and ":" not in host) or (use_ipv6 and ":" in host)
        ]

    # aioice looks the function up in its module at each gathering.
    aioice.ice.get_host_addresses = get_host_addresses


def rtc_configuration(servers: Sequence[IceServer], relay_only: bool) -> RTCConfiguration:
    """relay_only: only TURN relay candidates, so no peer ever learns the
    other's addresses (and a test proves the TURN path works)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=list(server.urls),
                username=server.username or None,
                credential=server.credential or None,
            )
            for server in servers
            if server.urls
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
    )
