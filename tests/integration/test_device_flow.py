"""The device flow client (crab/client/device_flow.py) against the test OIDC
provider over real sockets, and against hostile servers that answer too
much, garbage, or another issuer. Polls wait through a recording sleep that
yields to the loop but does not pass time, so the tests stay quick; the
provider's clock of polls shows they happened in order."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from crab.client.device_flow import (
    MAX_POLL_FAILURES,
    DeviceCode,
    DeviceFlow,
    DeviceFlowError,
    Provider,
)
from tests.helpers.oidc_provider import OidcProvider


class RecordingSleep:
    """Records the delays asked for; yields to the loop without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def flow(provider: OidcProvider, sleep: RecordingSleep) -> AsyncIterator[DeviceFlow]:
    made = DeviceFlow(Provider(provider.issuer, provider.client_id), sleep=sleep)
    yield made
    await made.aclose()


async def started(flow: DeviceFlow, provider: OidcProvider) -> tuple[DeviceCode, str]:
    code = await flow.start()
    return code, await asyncio.to_thread(provider.wait_for_code)


async def failure(awaitable: Any) -> DeviceFlowError:
    with pytest.raises(DeviceFlowError) as caught:
        await awaitable
    return caught.value


async def test_an_approval_after_two_pendings_gives_an_id_token_the_jwks_verifies(
    flow: DeviceFlow, provider: OidcProvider, sleep: RecordingSleep
) -> None:
    code, user_code = await started(flow, provider)
    assert code.user_code == user_code
    assert code.verification_uri.startswith(provider.issuer)
    assert user_code in code.verification_uri_complete
    provider.script("authorization_pending", "authorization_pending")
    provider.approve(user_code, "sub-bob", claims={"name": "Bob B."})

    token = await flow.id_token(code)

    keys = KeySet.import_key_set(provider.jwks())  # type: ignore[arg-type]
    claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["aud"], claims["sub"]) == (
        provider.issuer,
        provider.client_id,
        "sub-bob",
    )
    assert claims["name"] == "Bob B."
    assert len(provider.polls) == 3
    assert sleep.delays == [1.0, 1.0, 1.0]


async def test_slow_down_adds_five_seconds_to_every_later_interval(
    flow: DeviceFlow, provider: OidcProvider, sleep: RecordingSleep
) -> None:
    code, user_code = await started(flow, provider)
    provider.script("authorization_pending", "slow_down", "authorization_pending")
    provider.approve(user_code)

    await flow.id_token(code)

    assert provider.interval == 1
    assert sleep.delays == [1.0, 1.0, 6.0, 6.0]
    assert len(provider.polls) == 4


async def test_a_denial_is_reason_denied(flow: DeviceFlow, provider: OidcProvider) -> None:
    code, user_code = await started(flow, provider)
    provider.deny(user_code)
    error = await failure(flow.id_token(code))
    assert error.reason == "denied"
    assert "denied" in str(error)


async def test_an_expired_code_is_reason_expired(flow: DeviceFlow, provider: OidcProvider) -> None:
    code, user_code = await started(flow, provider)
    provider.expire(user_code)
    assert (await failure(flow.id_token(code))).reason == "expired"


async def test_expired_token_from_the_script_is_reason_expired(
    flow: DeviceFlow, provider: OidcProvider
) -> None:
    code, _ = await started(flow, provider)
    provider.script("authorization_pending", "expired_token")
    assert (await failure(flow.id_token(code))).reason == "expired"


async def test_the_local_deadline_passing_is_reason_expired(
    flow: DeviceFlow, provider: OidcProvider
) -> None:
    code, _ = await started(flow, provider)
    past = DeviceCode(
        code.user_code, code.verification_uri, "", code.device_code, code.interval, 0.0
    )
    assert (await failure(flow.id_token(past))).reason == "expired"
    assert provider.polls == []


async def test_a_provider_answering_503_is_unavailable(
    flow: DeviceFlow, provider: OidcProvider
) -> None:
    provider.down = True
    assert (await failure(flow.start())).reason == "unavailable"


async def test_a_stopped_provider_is_unavailable(
    provider: OidcProvider, sleep: RecordingSleep
) -> None:
    issuer = provider.issuer
    provider.stop()
    flow = DeviceFlow(Provider(issuer, "crab-test"), sleep=sleep)
    try:
        error = await failure(flow.start())
    finally:
        await flow.aclose()
    assert error.reason == "unavailable"


async def test_polling_gives_up_after_three_failures_in_a_row_and_survives_fewer(
    flow: DeviceFlow, provider: OidcProvider, sleep: RecordingSleep
) -> None:
    code, user_code = await started(flow, provider)
    provider.down = True
    assert (await failure(flow.id_token(code))).reason == "unavailable"
    assert len(sleep.delays) == MAX_POLL_FAILURES

    # Two lost polls, then the provider is back: the sign-in goes through.
    answers = iter([True, True, False])

    async def flaky_sleep(delay: float) -> None:
        provider.down = next(answers, False)
        await asyncio.sleep(0)

    provider.down = False
    provider.approve(user_code)
    again = DeviceFlow(Provider(provider.issuer, "crab-test"), sleep=flaky_sleep)
    try:
        await again.start()  # discovery, while the provider is up
        assert await again.id_token(code)
    finally:
        await again.aclose()


@pytest.mark.parametrize(
    "issuer", ["http://idp.example.com", "ftp://127.0.0.1/", "not a url", "https://"]
)
async def test_an_issuer_that_is_not_https_off_loopback_is_refused(issuer: str) -> None:
    flow = DeviceFlow(Provider(issuer, "crab-test"))
    try:
        assert (await failure(flow.start())).reason == "refused"
    finally:
        await flow.aclose()


async def test_openid_is_always_asked_for_and_the_secret_sent(
    provider: OidcProvider,
) -> None:
    seen: list[bytes] = []

    async def record(request: Any) -> None:
        seen.append(request.read())

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        provider = Provider(provider.issuer, "crab-test", ("email",), "not-so-secret")
        await DeviceFlow(provider, http=http).start()
        assert not http.is_closed
    form = seen[-1].decode()
    assert "scope=openid+email" in form
    assert "client_secret=not-so-secret" in form


# ---- hostile servers --------------------------------------------------------------


class Canned:
    """A server that answers every request with one body, for hostile cases."""

    def __init__(
        self, body: bytes | None = None, *, size: int = 0, declare: bool = True, status: int = 200
    ) -> None:
        self.body, self.size, self.declare, self.status = body, size, declare, status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = canned.body
                if body is None:  # a discovery document naming this server
                    body = (
                        f'{{"issuer": "{canned.url}", "token_endpoint": "{canned.url}/t",'
                        f' "device_authorization_endpoint": "{canned.url}/d"}}'
                    ).encode()
                self._send(body)

            def do_POST(self) -> None:
                self._send(canned.body or b"")

            def _send(self, body: bytes) -> None:
                self.send_response(canned.status)
                if canned.declare:
                    self.send_header("Content-Length", str(canned.size or len(body)))
                self.end_headers()
                # A peer that stops reading ends the write; that is the point.
                with contextlib.suppress(OSError):
                    if canned.size:
                        chunk = b" " * 65536
                        for _ in range(canned.size // len(chunk)):
                            self.wfile.write(chunk)
                    else:
                        self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> Canned:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@contextlib.contextmanager
def canned(body: bytes | None = None, **kwargs: Any) -> Iterator[Canned]:
    with Canned(body, **kwargs) as server:
        yield server


async def start_against(issuer: str) -> DeviceFlowError:
    flow = DeviceFlow(Provider(issuer, "crab-test"))
    try:
        return await failure(flow.start())
    finally:
        await flow.aclose()


async def test_a_discovery_document_naming_another_issuer_is_refused(
    provider: OidcProvider,
) -> None:
    with canned(f'{{"issuer": "{provider.issuer}"}}'.encode()) as server:
        error = await start_against(server.url)
    assert error.reason == "refused"
    assert "another issuer" in str(error)


@pytest.mark.parametrize("declared", [True, False])
async def test_a_ten_megabyte_answer_is_refused_without_reading_it_all(declared: bool) -> None:
    size = 10 * 1024 * 1024
    # Undeclared: no Content-Length, the body runs until the server closes.
    with canned(b"", size=size, declare=declared) as server:
        tracemalloc.start()
        try:
            error = await start_against(server.url)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert error.reason == "refused"
    assert "larger than 64 KiB" in str(error)
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"[" * 50_000,
        b"",
        b'{"issuer": 42}',
    ],
)
async def test_garbage_discovery_is_a_clear_refusal(body: bytes) -> None:
    with canned(body) as server:
        error = await start_against(server.url)
    assert error.reason == "refused"
    assert str(error).startswith("Cannot sign in:")


@pytest.mark.parametrize(
    "device_answer",
    [
        b"{}",
        b'{"device_code": 5, "user_code": "A", "verification_uri": "https://x", "expires_in": 60}',
        b'{"device_code": "d", "user_code": "\\u001b[2J", "verification_uri": "https://x", "expires_in": 60}',
        b'{"device_code": "d", "user_code": "AB", "verification_uri": "javascript:x", "expires_in": 60}',
        b'{"device_code": "d", "user_code": "AB", "verification_uri": "https://x", "expires_in": "soon"}',
        b'{"device_code": "d", "user_code": "AB", "verification_uri": "https://x", "expires_in": true}',
        b'{"device_code": "d", "user_code": "AB", "verification_uri": "https://x"}',
    ],
)
async def test_a_garbage_device_answer_is_a_clear_refusal(device_answer: bytes) -> None:
    with canned() as server:
        flow = DeviceFlow(Provider(server.url, "crab-test"))
        try:
            await flow._discover()
            server.body = device_answer  # discovery is cached now
            error = await failure(flow.start())
        finally:
            await flow.aclose()
    assert error.reason == "refused"


async def test_intervals_and_expiry_are_clamped() -> None:
    answer = (
        b'{"device_code": "d", "user_code": "AB", "verification_uri": "https://x",'
        b' "expires_in": 999999999, "interval": 0}'
    )
    with canned() as server:
        flow = DeviceFlow(Provider(server.url, "crab-test"))
        try:
            await flow._discover()
            server.body = answer
            before = time.monotonic()
            code = await flow.start()
        finally:
            await flow.aclose()
    assert code.interval == 1.0
    assert code.expires_at - before <= 30 * 60 + 1
    assert code.verification_uri_complete == ""


async def test_an_approval_without_an_id_token_is_refused(
    flow: DeviceFlow, provider: OidcProvider
) -> None:
    code, _ = await started(flow, provider)
    with canned(b'{"access_token": "a", "token_type": "Bearer"}') as server:
        # The same flow, its token endpoint now a server that forgets the id_token.
        assert flow._endpoints is not None
        flow._endpoints = type(flow._endpoints)(
            flow._endpoints.device_authorization, httpx.URL(server.url + "/token")
        )
        error = await failure(flow.id_token(code))
    assert error.reason == "refused"
    assert "no ID token" in str(error)
