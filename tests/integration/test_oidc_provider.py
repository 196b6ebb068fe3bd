"""The test OIDC provider itself (tests/helpers/oidc_provider.py): the tokens
it mints verify with its JWKS, rotation changes the keys, and the hostile
tokens really are what the server's refusal tests think they are."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.helpers.oidc_provider import (
    OidcProvider,
    alg_none,
    hs256_with_public_key,
    tampered,
)


def part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    loaded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return loaded


def served_keys(provider: OidcProvider) -> KeySet:
    return KeySet.import_key_set(httpx.get(f"{provider.issuer}/jwks").json())


def test_minted_tokens_verify_with_the_served_jwks_in_both_algorithms(
    provider: OidcProvider,
) -> None:
    keys = served_keys(provider)
    for alg in ("RS256", "ES256"):
        token = provider.mint("sub-carol", claims={"email": None, "groups": ["a"]}, alg=alg)
        decoded = jwt.decode(token, keys, algorithms=[alg])
        assert decoded.header["alg"] == alg
        assert decoded.claims["sub"] == "sub-carol"
        assert decoded.claims["groups"] == ["a"]
        assert "email" not in decoded.claims
    assert provider.jwks_fetches == 1


def test_discovery_names_the_endpoints_and_counts_fetches(provider: OidcProvider) -> None:
    found = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    assert found["issuer"] == provider.issuer
    assert found["jwks_uri"] == f"{provider.issuer}/jwks"
    assert found["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert provider.discovery_fetches == 1
    provider.down = True
    assert httpx.get(f"{provider.issuer}/jwks").status_code == 503


def test_rotation_replaces_the_keys_unless_told_to_keep_them(provider: OidcProvider) -> None:
    first = {key["kid"] for key in provider.jwks()["keys"]}  # type: ignore[attr-defined]
    provider.rotate(keep_old=True)
    kept = {key["kid"] for key in provider.jwks()["keys"]}  # type: ignore[attr-defined]
    provider.rotate()
    latest = {key["kid"] for key in provider.jwks()["keys"]}  # type: ignore[attr-defined]
    assert first < kept
    assert len(latest) == 2
    assert not latest & kept


def test_a_foreign_token_looks_right_but_no_served_key_verifies_it(
    provider: OidcProvider,
) -> None:
    token = provider.foreign_token()
    kid = part(token, 0)["kid"]
    assert kid.startswith("key-")
    assert kid not in {key.kid for key in served_keys(provider)}
    with pytest.raises(JoseError):
        jwt.decode(token, served_keys(provider), algorithms=["RS256"])


def test_alg_none_says_none_keeps_the_payload_and_has_no_signature(
    provider: OidcProvider,
) -> None:
    token = provider.mint()
    forged = alg_none(token)
    assert part(forged, 0)["alg"] == "none"
    assert part(forged, 1) == part(token, 1)
    assert forged.endswith(".")
    with pytest.raises(JoseError):
        jwt.decode(forged, served_keys(provider), algorithms=["RS256", "ES256"])


def test_hs256_with_the_public_key_is_a_valid_hmac_over_the_public_pem(
    provider: OidcProvider,
) -> None:
    forged = hs256_with_public_key(provider, "sub-mallory")
    header, payload, signature = forged.split(".")
    assert part(forged, 0)["alg"] == "HS256"
    assert part(forged, 1)["sub"] == "sub-mallory"
    expected = hmac.new(
        provider.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    with pytest.raises(JoseError):
        jwt.decode(forged, served_keys(provider), algorithms=["RS256", "ES256"])


def test_a_tampered_token_keeps_its_signature_and_fails_verification(
    provider: OidcProvider,
) -> None:
    token = provider.mint()
    forged = tampered(token, sub="sub-admin", email=None)
    assert forged.split(".")[2] == token.split(".")[2]
    assert part(forged, 1)["sub"] == "sub-admin"
    assert "email" not in part(forged, 1)
    with pytest.raises(JoseError):
        jwt.decode(forged, served_keys(provider), algorithms=["RS256"])


def test_the_token_endpoint_refuses_unknown_clients_and_codes(provider: OidcProvider) -> None:
    url = f"{provider.issuer}/token"
    grant = "urn:ietf:params:oauth:grant-type:device_code"
    other = httpx.post(url, data={"grant_type": grant, "client_id": "x", "device_code": "y"})
    unknown = httpx.post(
        url, data={"grant_type": grant, "client_id": "crab-test", "device_code": "y"}
    )
    garbage = httpx.post(url, content=b"\xff&=" * 3000)
    assert (other.status_code, other.json()["error"]) == (400, "invalid_client")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    assert garbage.status_code == 400
    with pytest.raises(ValueError):
        provider.script("granted")
