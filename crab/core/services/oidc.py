"""The team's identity provider: checks its ID tokens, once, at sign-in.

The provider's discovery document names its keys (JWKS); both are fetched
on first use and kept. A token signed with a key id not in the kept set
refetches the keys once (the provider rotated them), at most every
`keys_refetch_gap` seconds, so a flood of forged key ids costs one fetch. The
algorithm is pinned (RS256 or ES256, matching the key's type), never taken
from the token alone. The provider unreachable gives Unavailable; a token
that does not check out gives Unauthenticated (docs/single-sign-on.md)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from crab.config import OidcSettings, check_url
from crab.errors import Unauthenticated, Unavailable

log = logging.getLogger(__name__)

MAX_ID_TOKEN_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 256 * 1024  # a discovery document or a key set
MAX_SUBJECT_CHARS = 255  # OIDC Core: sub is at most 255 ASCII characters
LEEWAY = 60  # seconds of clock difference allowed on exp, nbf and iat
KEYS_MAX_AGE = 3600.0  # seconds the keys are kept before the next sign-in refetches them
HTTP_TIMEOUT = 5.0
KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}  # the algorithms accepted, and their key types


@dataclass(frozen=True, slots=True)
class Identity:
    issuer: str
    subject: str
    claims: dict[str, Any]


class IdentityProvider:
    def __init__(
        self,
        settings: OidcSettings,
        http: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        check_url(settings.issuer, "the OIDC issuer")
        self.settings = settings
        # Accounts are linked to the issuer without a trailing slash (how it
        # was typed must not matter); tokens must name it exactly as the
        # discovery document does (Auth0's ends with "/", Keycloak's not).
        self.issuer = settings.issuer.rstrip("/")
        self._token_issuer = ""
        self.audience = settings.audience or settings.client_id
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
        self._own_http = http is None
        self._refetch_gap = settings.keys_refetch_gap
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._jwks_uri = ""
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._fetching = asyncio.Lock()

    @property
    def display_name(self) -> str:
        return self.settings.name or urlsplit(self.issuer).hostname or self.issuer

    async def close(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def verify(self, id_token: str) -> Identity:
        if len(id_token) > MAX_ID_TOKEN_BYTES:
            raise Unauthenticated(f"ID token longer than {MAX_ID_TOKEN_BYTES} bytes")
        alg, kid = _header(id_token)
        key = await self._key(kid, alg)
        try:
            token = jwt.decode(id_token, key, algorithms=[alg])
        except JoseError:
            raise Unauthenticated("ID token signature does not verify") from None
        claims = token.claims
        self._check_claims(claims)
        subject = claims["sub"]
        return Identity(self.issuer, subject, claims)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        rules = jwt.JWTClaimsRegistry(
            now=lambda: int(self._wall_clock()),
            leeway=LEEWAY,
            iss={"essential": True, "value": self._token_issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            rules.validate(claims)
        except JoseError as error:
            raise Unauthenticated(f"ID token refused: {error.description or error.error}") from None
        subject = claims["sub"]
        if not subject or len(subject) > MAX_SUBJECT_CHARS or not subject.isprintable():
            raise Unauthenticated("ID token refused: its subject is empty or malformed")
        # OIDC Core 3.1.3.7: several audiences name the one it was for in azp.
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp", self.settings.client_id) != (
            self.settings.client_id
        ):
            raise Unauthenticated("ID token refused: issued to another client (azp)")

    async def _key(self, kid: str | None, alg: str) -> RSAKey | ECKey:
        now = self._monotonic()
        if self._keys is None or now - self._fetched_at > KEYS_MAX_AGE:
            await self._refresh_keys(stale_ok=self._keys is not None)
        key = self._find(kid, alg)
        if key is None and self._monotonic() - self._fetched_at >= self._refetch_gap:
            await self._refresh_keys(stale_ok=True)  # rotated since: once, then no more
            key = self._find(kid, alg)
        if key is None:
            raise Unauthenticated("ID token signed by a key the provider does not list")
        return key

    def _find(self, kid: str | None, alg: str) -> RSAKey | ECKey | None:
        assert self._keys is not None
        fitting: list[RSAKey | ECKey] = [
            k
            for k in self._keys.keys
            if isinstance(k, RSAKey | ECKey)
            and k.key_type == KEY_TYPES[alg]
            and (kid is None or k.kid == kid)
            and k.get("alg", alg) == alg
            and k.get("use", "sig") == "sig"
        ]
        # No kid in the token: only a set with one fitting key says which.
        if len(fitting) != 1 and kid is None:
            return None
        return fitting[0] if fitting else None

    async def _refresh_keys(self, stale_ok: bool) -> None:
        """Fetches the keys. One fetch at a time: sign-ins waiting for it use
        its result. `stale_ok`: keys already kept stay in use when the
        provider cannot be reached (a sign-in with a kept key still works)."""
        started = self._monotonic()
        async with self._fetching:
            if self._fetched_at >= started:
                return  # fetched by another sign-in while this one waited
            try:
                if not self._jwks_uri:
                    self._jwks_uri = await self._discover()
                document = await self._get_json(self._jwks_uri, "keys")
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as error:
                self._fetched_at = self._monotonic()
                if stale_ok and self._keys is not None:
                    log.warning("identity provider's keys unreadable, kept ones used: %s", error)
                    return
                raise Unavailable(
                    f"the identity provider's keys are unreadable ({error}); try again later"
                ) from None
            except Unavailable:
                self._fetched_at = self._monotonic()
                if stale_ok and self._keys is not None:
                    log.warning("identity provider unreachable, kept keys used")
                    return
                raise
            self._keys = keys
            self._fetched_at = self._monotonic()
            log.info("identity provider keys fetched: %d keys", len(keys.keys))

    async def _discover(self) -> str:
        url = f"{self.issuer}/.well-known/openid-configuration"
        document = await self._get_json(url, "discovery document")
        named = document.get("issuer")
        if not isinstance(named, str) or named.rstrip("/") != self.issuer:
            raise ValueError(f"the discovery document names another issuer: {str(named)[:100]!r}")
        self._token_issuer = named
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        check_url(jwks_uri, "jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http.stream("GET", url) as answer:
                if answer.status_code != 200:
                    raise Unavailable(
                        f"the identity provider answered {answer.status_code} for its {what}"
                    )
                body = b""
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise ValueError(f"its {what} is larger than {MAX_DOCUMENT_BYTES} bytes")
        except httpx.HTTPError as error:
            raise Unavailable(
                f"cannot reach the identity provider ({type(error).__name__}); try again later"
            ) from None
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"its {what} is not a JSON object")
        return document


def _header(id_token: str) -> tuple[str, str | None]:
    """(alg, kid) of a compact JWS, unverified: only to choose the key."""
    parts = id_token.split(".")
    if len(parts) != 3:
        raise Unauthenticated("ID token is not a signed JWT")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise Unauthenticated("ID token header is unreadable") from None
    if not isinstance(header, dict):
        raise Unauthenticated("ID token header is unreadable")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in KEY_TYPES:
        raise Unauthenticated(f"ID token algorithm not accepted: {str(alg)[:20]!r}")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
        raise Unauthenticated("ID token key id is malformed")
    return alg, kid
