"""A small OIDC provider for tests: discovery, a JWKS whose keys can rotate,
and the device authorization grant (RFC 8628) with a token endpoint a test
can steer. A stdlib ThreadingHTTPServer on 127.0.0.1, in a background
thread, so synchronous and asyncio tests can both use it.

    with OidcProvider() as provider:
        token = provider.mint("sub-bob", audience="someone-else")
        ... start a device flow against provider.issuer ...
        provider.approve(provider.wait_for_code())

Plus helpers that build hostile tokens (alg none, HS256 keyed with the
public key, a tampered payload) for the server's refusal tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import ECKey, KeyParameters, RSAKey

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_ERRORS = ("authorization_pending", "slow_down", "expired_token", "access_denied")
ALGS = ("RS256", "ES256")
# A test provider reads small forms only.
MAX_FORM = 16 * 1024
# Without "0O1I" so a user code reads unambiguously, as RFC 8628 6.1 advises.
USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"

_kids = itertools.count(1)

Key = RSAKey | ECKey


def _new_key(alg: str) -> Key:
    params: KeyParameters = {"kid": f"key-{next(_kids)}", "alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    raise ValueError(f"unsupported alg {alg!r}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _user_code() -> str:
    letters = "".join(secrets.choice(USER_CODE_LETTERS) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


@dataclass
class _Device:
    device_code: str
    user_code: str
    expires_at: float
    state: str = "pending"  # pending | approved | denied | expired
    subject: str = ""
    claims: dict[str, object] = field(default_factory=dict)


class OidcProvider:
    def __init__(self, *, client_id: str = "crab-test", interval: int = 1) -> None:
        self.client_id = client_id
        self.interval = interval
        self.down = False
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.polls: list[float] = []
        self.device_expires_in = 600
        self._lock = threading.Condition()
        self._current: dict[str, Key] = {alg: _new_key(alg) for alg in ALGS}
        self._published: list[Key] = list(self._current.values())
        self._devices: dict[str, _Device] = {}  # by device_code
        self._issued: list[str] = []  # user codes, in order of issue
        self._waited = 0  # user codes wait_for_code already handed out
        self._script: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.issuer = ""

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> OidcProvider:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.issuer = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="oidc-provider"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- ID tokens ------------------------------------------------------------

    def mint(
        self,
        subject: str = "sub-alice",
        *,
        claims: dict[str, object] | None = None,
        issuer: str | None = None,
        audience: str | list[str] | None = None,
        expires_in: int = 300,
        not_before: int | None = None,
        issued_at: int | None = None,
        alg: str = "RS256",
        kid: str | None = None,
    ) -> str:
        with self._lock:
            key = self._current[alg]
        return _sign(
            self._claims(subject, claims, issuer, audience, expires_in, not_before, issued_at),
            key,
            alg,
            kid,
        )

    def foreign_token(self, subject: str = "sub-alice") -> str:
        """Well formed and signed, but by a key the JWKS never listed."""
        return _sign(self._claims(subject, None, None, None, 300, None, None), _new_key("RS256"))

    def rotate(self, keep_old: bool = False) -> None:
        with self._lock:
            old = list(self._published)
            self._current = {alg: _new_key(alg) for alg in ALGS}
            self._published = list(self._current.values()) + (old if keep_old else [])

    def jwks(self) -> dict[str, object]:
        with self._lock:
            return {"keys": [key.as_dict(private=False) for key in self._published]}

    def public_pem(self, alg: str = "RS256") -> bytes:
        with self._lock:
            return self._current[alg].as_pem(private=False)

    def _claims(
        self,
        subject: str,
        claims: dict[str, object] | None,
        issuer: str | None,
        audience: str | list[str] | None,
        expires_in: int,
        not_before: int | None,
        issued_at: int | None,
    ) -> dict[str, object]:
        now = int(time.time())
        iat = now if issued_at is None else issued_at
        name = subject.removeprefix("sub-")
        made: dict[str, object] = {
            "iss": self.issuer if issuer is None else issuer,
            "aud": self.client_id if audience is None else audience,
            "sub": subject,
            "iat": iat,
            "exp": iat + expires_in,
            "name": name.title(),
            "preferred_username": name,
            "email": f"{name}@example.com",
        }
        if not_before is not None:
            made["nbf"] = not_before
        made.update(claims or {})
        return {k: v for k, v in made.items() if v is not None}

    # ---- device authorization grant ------------------------------------------

    def wait_for_code(self, timeout: float = 10.0) -> str:
        """The user code of the next device code issued (blocks until one is)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._issued) > self._waited, timeout):
                raise TimeoutError(f"no device code issued within {timeout} s")
            self._waited += 1
            return self._issued[self._waited - 1]

    def approve(
        self, user_code: str, subject: str = "sub-alice", claims: dict[str, object] | None = None
    ) -> None:
        with self._lock:
            device = self._by_user_code(user_code)
            device.state, device.subject, device.claims = "approved", subject, dict(claims or {})

    def deny(self, user_code: str) -> None:
        with self._lock:
            self._by_user_code(user_code).state = "denied"

    def expire(self, user_code: str) -> None:
        with self._lock:
            self._by_user_code(user_code).state = "expired"

    def script(self, *answers: str) -> None:
        for answer in answers:
            if answer not in TOKEN_ERRORS:
                raise ValueError(f"unknown token-endpoint answer {answer!r}")
        with self._lock:
            self._script.extend(answers)

    def _by_user_code(self, user_code: str) -> _Device:
        for device in self._devices.values():
            if device.user_code == user_code:
                return device
        raise KeyError(f"no device code with user code {user_code!r}")

    # ---- endpoints (called on the server's threads) ---------------------------

    def _discovery(self) -> dict[str, object]:
        with self._lock:
            self.discovery_fetches += 1
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "token_endpoint": f"{self.issuer}/token",
            "device_authorization_endpoint": f"{self.issuer}/device/code",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "response_types_supported": ["code", "id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ALGS),
            "scopes_supported": ["openid", "profile", "email"],
            "grant_types_supported": [DEVICE_GRANT],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
        }

    def _jwks_answer(self) -> dict[str, object]:
        with self._lock:
            self.jwks_fetches += 1
        return self.jwks()

    def _device_code(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_client"}
        device = _Device(
            device_code=secrets.token_urlsafe(24),
            user_code=_user_code(),
            expires_at=time.monotonic() + self.device_expires_in,
        )
        with self._lock:
            self._devices[device.device_code] = device
            self._issued.append(device.user_code)
            self._lock.notify_all()
        verify = f"{self.issuer}/device"
        return 200, {
            "device_code": device.device_code,
            "user_code": device.user_code,
            "verification_uri": verify,
            "verification_uri_complete": f"{verify}?user_code={device.user_code}",
            "expires_in": self.device_expires_in,
            "interval": self.interval,
        }

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        with self._lock:
            self.polls.append(time.monotonic())
            if form.get("client_id") != self.client_id:
                return 400, {"error": "invalid_client"}
            if form.get("grant_type") != DEVICE_GRANT:
                return 400, {"error": "unsupported_grant_type"}
            device = self._devices.get(form.get("device_code", ""))
            if device is None:
                return 400, {"error": "invalid_grant"}
            if self._script:
                return 400, {"error": self._script.pop(0)}
            if device.state == "pending" and time.monotonic() > device.expires_at:
                device.state = "expired"
            if device.state == "pending":
                return 400, {"error": "authorization_pending"}
            if device.state == "denied":
                return 400, {"error": "access_denied"}
            if device.state == "expired":
                return 400, {"error": "expired_token"}
            # Approved: the code is used up, as a real provider does.
            del self._devices[device.device_code]
            subject, claims = device.subject, device.claims
        return 200, {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "id_token": self.mint(subject, claims=claims),
            "expires_in": 3600,
        }


def _sign(claims: dict[str, object], key: Key, alg: str = "RS256", kid: str | None = None) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": kid or key.kid}
    return jwt.encode(header, claims, key, algorithms=[alg])


def _handler_for(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self._refused_while_down():
                return
            if self.path == "/.well-known/openid-configuration":
                self._answer(200, provider._discovery())
            elif self.path == "/jwks":
                self._answer(200, provider._jwks_answer())
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if self._refused_while_down():
                return
            form = self._form()
            if form is None:
                self._answer(400, {"error": "invalid_request"})
            elif self.path == "/device/code":
                self._answer(*provider._device_code(form))
            elif self.path == "/token":
                self._answer(*provider._token(form))
            else:
                self._answer(404, {"error": "not_found"})

        def _refused_while_down(self) -> bool:
            # Read once: a test may bring the provider back the moment it has
            # the 503, and this request must not then be served as well.
            down = provider.down
            if down:
                self._answer(503, {"error": "temporarily_unavailable"})
            return down

        def _form(self) -> dict[str, str] | None:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                return None
            if not 0 <= length <= MAX_FORM:
                return None
            body = self.rfile.read(length).decode("utf-8", "replace")
            return {k: v[0] for k, v in parse_qs(body).items()}

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows failures, not every request

    return Handler


# ---- hostile tokens ---------------------------------------------------------------


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload)), signature


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def alg_none(token: str) -> str:
    """The same payload under a header that says alg "none", no signature."""
    header, payload, _ = _parts(token)
    header["alg"] = "none"
    return f"{_segment(header)}.{_segment(payload)}."


def hs256_with_public_key(provider: OidcProvider, subject: str = "sub-alice") -> str:
    """HS256 keyed with the RS256 public key's PEM: the classic confusion of a
    verifier that takes the algorithm from the token. Built by hand, as
    joserfc refuses to use an RSA key as an HMAC secret."""
    _, payload, _ = _parts(provider.mint(subject))
    with provider._lock:
        kid = provider._current["RS256"].kid
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(payload)}"
    mac = hmac.new(provider.public_pem("RS256"), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64(mac.digest())}"


def tampered(token: str, **claims: object) -> str:
    """The payload changed (claims set; None removes one), the signature kept."""
    header_segment = token.split(".")[0]
    _, payload, signature = _parts(token)
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return f"{header_segment}.{_segment(payload)}.{signature}"
