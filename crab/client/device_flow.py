"""The OAuth device authorization grant (RFC 8628) on httpx: how a terminal
signs in with an identity provider. The user opens a URL on any device and
types a short code; meanwhile we poll the provider's token endpoint until it
answers with an ID token, which the crab server then verifies and exchanges.

    flow = DeviceFlow(Provider("https://idp.example", "crab"))
    code = await flow.start()          # show code.verification_uri, code.user_code
    id_token = await flow.id_token(code)
    await flow.aclose()

Everything the provider sends is untrusted: bodies are capped, numbers
clamped, strings checked before they reach the screen. Every failure is a
DeviceFlowError whose `reason` a caller can branch on and whose text a user
can read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

__all__ = ["DeviceCode", "DeviceFlow", "DeviceFlowError", "Provider"]

Reason = Literal["denied", "expired", "unavailable", "refused"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# Discovery documents and token answers are a few KiB; an ID token is one.
MAX_BODY = 64 * 1024
# RFC 8628 3.2: 5 s when the provider names no interval.
DEFAULT_INTERVAL = 5.0
MIN_INTERVAL, MAX_INTERVAL = 1.0, 60.0
MAX_EXPIRES_IN = 30 * 60
# RFC 8628 3.5: each slow_down adds 5 s for the rest of the flow.
SLOW_DOWN_STEP = 5.0
# Network failures in a row while polling before we give up.
MAX_POLL_FAILURES = 3
MAX_CODE = 4096  # device_code: opaque, some providers' are long
MAX_USER_CODE = 64
MAX_URI = 2048


class DeviceFlowError(Exception):
    """str(error) is a sentence for the user; `reason` is one of
    "denied" (the user said no), "expired" (the code ran out),
    "unavailable" (the provider could not be reached, or answered 5xx),
    "refused" (the provider's answer, or its address, is not acceptable)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


DEFAULT_SCOPES = ("openid", "profile", "email")


@dataclass(frozen=True)
class Provider:
    """What the server's SignInOptions.provider says."""

    issuer: str
    client_id: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    client_secret: str = ""  # Google's not-secret secret for device clients


@dataclass(frozen=True)
class DeviceCode:
    user_code: str
    verification_uri: str
    verification_uri_complete: str  # "" when the provider gives none
    device_code: str
    interval: float  # seconds between polls
    expires_at: float  # time.monotonic() deadline


@dataclass(frozen=True)
class _Endpoints:
    device_authorization: httpx.URL
    token: httpx.URL


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
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep
        self._timeout = timeout
        self._endpoints: _Endpoints | None = None

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def start(self) -> DeviceCode:
        """Discovery (once per flow object), then the device authorization request."""
        endpoints = await self._discover()
        form = {"client_id": self.provider.client_id, "scope": self._scope()}
        status, body = await self._post(endpoints.device_authorization, form)
        if status != 200:
            raise _refused(f"the sign-in provider refused to start a sign-in ({_why(body)})")
        return _device_code(body)

    async def id_token(self, code: DeviceCode) -> str:
        """Polls the token endpoint, no faster than the interval, until the
        user approves (the ID token), denies, or the code expires."""
        endpoints = await self._discover()
        form = {
            "grant_type": DEVICE_GRANT,
            "device_code": code.device_code,
            "client_id": self.provider.client_id,
        }
        interval = code.interval
        failures = 0
        while True:
            await self._sleep(interval)
            if time.monotonic() >= code.expires_at:
                raise _expired()
            try:
                status, body = await self._post(endpoints.token, form)
            except DeviceFlowError as error:
                # One lost poll is not a lost sign-in: try again next interval.
                failures += 1
                if error.reason != "unavailable" or failures >= MAX_POLL_FAILURES:
                    raise
                continue
            failures = 0
            if status == 200:
                return _id_token_in(body)
            match body.get("error"):
                case "authorization_pending":
                    continue
                case "slow_down":
                    interval = min(interval + SLOW_DOWN_STEP, MAX_INTERVAL + SLOW_DOWN_STEP)
                case "access_denied":
                    raise DeviceFlowError("denied", "The sign-in was denied at the provider.")
                case "expired_token":
                    raise _expired()
                case _:
                    raise _refused(f"the sign-in provider refused the sign-in ({_why(body)})")

    # ---- HTTP ---------------------------------------------------------------

    def _scope(self) -> str:
        return " ".join(["openid", *(s for s in self.provider.scopes if s != "openid")])

    async def _discover(self) -> _Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        issuer = self.provider.issuer
        base = _checked_url(issuer)
        url = base.copy_with(path=base.path.rstrip("/") + "/.well-known/openid-configuration")
        status, body = await self._request("GET", url, None)
        if status != 200:
            raise _refused(f"the sign-in provider has no discovery document (HTTP {status})")
        if body.get("issuer") != issuer:
            raise _refused(
                f"the sign-in provider's discovery document names another issuer"
                f" ({_shown(body.get('issuer'))}, expected {issuer})"
            )
        self._endpoints = _Endpoints(
            device_authorization=_endpoint(body, "device_authorization_endpoint"),
            token=_endpoint(body, "token_endpoint"),
        )
        return self._endpoints

    async def _post(self, url: httpx.URL, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if self.provider.client_secret:
            form = {**form, "client_secret": self.provider.client_secret}
        return await self._request("POST", url, form)

    async def _request(
        self, method: str, url: httpx.URL, form: Mapping[str, str] | None
    ) -> tuple[int, dict[str, object]]:
        """(status, JSON object) for any status below 500; raises otherwise."""
        # identity: the cap below counts bytes as sent (no decompression bomb).
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        try:
            async with self._http.stream(
                method, url, data=form, headers=headers, timeout=self._timeout
            ) as response:
                if response.status_code >= 500:
                    raise _unavailable(f"it answered HTTP {response.status_code}")
                raw = await _capped(response)
                status = response.status_code
        except httpx.TransportError as error:
            raise _unavailable(_describe(error)) from error
        except httpx.HTTPError as error:
            raise _refused(f"its answer could not be read ({_describe(error)})") from error
        return status, _json_object(raw)


async def _capped(response: httpx.Response) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(raw: bytes) -> dict[str, object]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _refused("the sign-in provider answered with something that is not JSON") from None
    if not isinstance(value, dict):
        raise _refused("the sign-in provider answered with JSON that is not an object")
    return value


def _checked_url(text: str) -> httpx.URL:
    """https, or http on a loopback host (a provider in tests, or on this machine)."""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError):
        raise _refused(f"the sign-in provider's address is not a URL ({_shown(text)})") from None
    if url.scheme == "https" and url.host:
        return url
    if url.scheme == "http" and url.host in LOOPBACK:
        return url
    raise _refused(
        f"the sign-in provider's address must use https ({_shown(text)});"
        " plain http is only for 127.0.0.1, ::1 or localhost"
    )


def _endpoint(discovery: Mapping[str, object], name: str) -> httpx.URL:
    value = discovery.get(name)
    if not isinstance(value, str) or not value:
        raise _refused(f"the sign-in provider does not offer the device flow (no {name})")
    if len(value) > MAX_URI:
        raise _refused(f"the sign-in provider's {name} is too long")
    return _checked_url(value)


def _device_code(body: Mapping[str, object]) -> DeviceCode:
    # Google names it verification_url (before RFC 8628 settled the name).
    verification = body.get("verification_uri", body.get("verification_url"))
    complete = body.get("verification_uri_complete", "")
    return DeviceCode(
        user_code=_text(body.get("user_code"), "user_code", MAX_USER_CODE),
        verification_uri=_link(verification, "verification_uri"),
        verification_uri_complete=_link(complete, "verification_uri_complete") if complete else "",
        device_code=_text(body.get("device_code"), "device_code", MAX_CODE),
        interval=_clamped(body.get("interval", DEFAULT_INTERVAL), MIN_INTERVAL, MAX_INTERVAL),
        expires_at=time.monotonic() + _clamped(body.get("expires_in"), 1, MAX_EXPIRES_IN),
    )


def _text(value: object, name: str, limit: int) -> str:
    # Shown on a terminal: no control characters (no escape sequences).
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise _refused(f"the sign-in provider sent an unusable {name}")
    return value


def _link(value: object, name: str) -> str:
    text = _text(value, name, MAX_URI)
    if not text.startswith(("https://", "http://")):
        raise _refused(f"the sign-in provider sent an unusable {name}")
    return text


def _clamped(value: object, low: float, high: float) -> float:
    # bool is an int to Python, not a number of seconds to anyone.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _refused("the sign-in provider sent an unusable interval or expiry")
    return float(min(max(value, low), high))


def _id_token_in(body: Mapping[str, object]) -> str:
    token = body.get("id_token")
    if not isinstance(token, str) or not token:
        raise _refused("the sign-in provider approved, but sent no ID token (is openid a scope?)")
    return token


def _why(body: Mapping[str, object]) -> str:
    return _shown(body.get("error", "no reason given"))


def _shown(value: object, limit: int = 80) -> str:
    """A provider's value, safe and short enough to put in a sentence."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__


def _refused(why: str) -> DeviceFlowError:
    return DeviceFlowError("refused", f"Cannot sign in: {why}.")


def _unavailable(why: str) -> DeviceFlowError:
    return DeviceFlowError("unavailable", f"The sign-in provider is unavailable: {_shown(why)}.")


def _expired() -> DeviceFlowError:
    return DeviceFlowError("expired", "The sign-in code expired before it was approved.")


def _too_large() -> DeviceFlowError:
    return _refused(f"the sign-in provider's answer is larger than {MAX_BODY // 1024} KiB")
