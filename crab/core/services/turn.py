"""Short-lived credentials for the media servers: TURN in coturn's shared-secret scheme
(`--use-auth-secret`): the username is "<expiry epoch>:<user id>", the
password base64(HMAC-SHA1(secret, username)). coturn checks both without
asking crab, and refuses them once the expiry has passed, so a credential
that leaks is worth one call at most. Janus's signed tokens
(`token_auth_secret`) are the same idea: `janus_token`."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server as a WebRTC client is configured with it."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


def turn_credentials(secret: str, user_id: int, ttl: float, now: float) -> tuple[str, str]:
    username = f"{int(now + ttl)}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(
    turn_urls: tuple[str, ...],
    stun_urls: tuple[str, ...],
    secret: str,
    user_id: int,
    ttl: float,
    now: float,
) -> list[IceServer]:
    """What one participant of a call is handed: STUN as is, TURN with its
    own fresh credentials."""
    servers = [IceServer(stun_urls)] if stun_urls else []
    if turn_urls and secret:
        username, password = turn_credentials(secret, user_id, ttl, now)
        servers.append(IceServer(turn_urls, username, password))
    return servers


VIDEOROOM = "janus.plugin.videoroom"


def janus_token(secret: str, expires: int, plugins: tuple[str, ...] = (VIDEOROOM,)) -> str:
    """A token Janus accepts with `token_auth_secret = secret` until `expires`
    (epoch seconds), for these plugins: "<expiry>,janus,<plugin>..." then ":"
    and base64(HMAC-SHA1(secret, that))."""
    data = ",".join((str(expires), "janus", *plugins))
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()
    return f"{data}:{base64.b64encode(digest).decode()}"
