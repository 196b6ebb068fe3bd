"""PLACEHOLDER with the agreed interface of the device flow client (RFC 8628
on httpx), so the TUI and `crab login --sso` type-check before helper A's
module lands on main. Replaced by main's file at the merge; nothing here
is meant to run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    client_secret: str = ""


@dataclass(frozen=True)
class DeviceCode:
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    device_code: str
    interval: float
    expires_at: float  # monotonic


class DeviceFlowError(Exception):
    """reason: "denied" | "expired" | "unavailable" | "refused"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DeviceFlow:
    def __init__(
        self,
        provider: Provider,
        *,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout: float = 10.0,
    ) -> None:
        self.provider = provider

    async def start(self) -> DeviceCode:
        raise DeviceFlowError("unavailable", "the device flow is not here yet (placeholder)")

    async def id_token(self, code: DeviceCode) -> str:
        raise DeviceFlowError("unavailable", "the device flow is not here yet (placeholder)")

    async def aclose(self) -> None:
        return None
