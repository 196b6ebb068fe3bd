"""Interoperability: crab's server accepts the ID tokens of a third-party
provider it was not written against (oidc-provider-mock, from the package
index, built on authlib): its discovery document, its key set, its tokens.
That mock has no device grant, so the token comes from its authorization
code flow, driven here as a browser and a client would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.config import OidcSettings
from crab.core.app import Crab
from tests.helpers.server import make_settings

# The mock runs on authlib's deprecated modules; their warnings (at import,
# and in the mock's own thread) are not crab's.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLIENT_ID = "crab-interop"
REDIRECT = "http://localhost/callback"


@pytest.fixture
def issuer() -> Iterator[str]:
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
async def crab_sso(tmp_path: Path, issuer: str) -> AsyncIterator[Crab]:
    settings = make_settings(tmp_path, oidc=OidcSettings(issuer=issuer, client_id=CLIENT_ID))
    app = await Crab.open(settings)
    await app.start_worker()
    await app.start_server()
    yield app
    await app.close()


def id_token_from_the_mock(issuer: str, subject: str, claims: dict[str, object]) -> str:
    with httpx.Client(base_url=issuer, timeout=10) as http:
        http.put(f"/users/{subject}", json=claims).raise_for_status()
        query = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid profile email",
        }
        approved = http.post("/oauth2/authorize", params=query, data={"sub": subject})
        assert approved.status_code == 302, approved.text
        code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "client_secret": "any",
        }
        answer = http.post("/oauth2/token", data=form)
        answer.raise_for_status()
        token: str = answer.json()["id_token"]
        return token


async def test_a_third_party_providers_id_token_signs_in(crab_sso: Crab, issuer: str) -> None:
    claims = {"preferred_username": "zoe", "name": "Zoe Zimmer", "email": "zoe@example.com"}
    token = id_token_from_the_mock(issuer, "sub-zoe", claims)
    client = CrabClient("127.0.0.1", crab_sso.port)
    try:
        me = await client.sign_in_with_provider(token)
        assert (me.username, me.display_name) == ("zoe", "Zoe Zimmer")
        again = id_token_from_the_mock(issuer, "sub-zoe", claims)
        assert (await client.sign_in_with_provider(again)).id == me.id

        # Its token with one character of the signature changed: refused.
        head, body, signature = token.split(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        with pytest.raises(GRPCError) as refused:
            await client.sign_in_with_provider(f"{head}.{body}.{flipped}")
        assert refused.value.status is Status.UNAUTHENTICATED
    finally:
        client.close()
