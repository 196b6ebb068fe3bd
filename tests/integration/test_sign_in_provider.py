"""Signing in with the team's identity provider, through a real server
and the test provider (tests/helpers/oidc_provider.py), over real sockets:
the first sign-in makes the account, later ones find it by (issuer,
subject), every forged or stale token is refused with UNAUTHENTICATED and
creates nothing, key rotation refetches once, the provider down is
UNAVAILABLE, and --no-passwords leaves only the provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.proto.crab import v1 as pb
from tests.helpers.oidc_provider import OidcProvider, alg_none, hs256_with_public_key, tampered
from tests.helpers.server import PASSWORD, SSO_REFETCH_GAP, SsoServer


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[Crab], CrabClient]]:
    made: list[CrabClient] = []

    def make(app: Crab) -> CrabClient:
        client = CrabClient("127.0.0.1", app.port)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


async def refused(call: Awaitable[object], status: Status) -> str:
    with pytest.raises(GRPCError) as caught:
        await call
    assert caught.value.status is status, caught.value
    return caught.value.message or ""


# ---- what the client is told --------------------------------------------------


async def test_the_server_offers_its_provider_and_passwords(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    options = await clients(await sso_server()).sign_in_options()
    assert options.passwords and options.sign_up
    assert options.provider is not None
    assert options.provider.name == "Test"
    assert options.provider.issuer == provider.issuer
    assert options.provider.client_id == provider.client_id
    assert "openid" in options.provider.scopes


async def test_without_a_provider_options_say_so_and_the_exchange_is_refused(
    crab: Crab, connect: Callable[..., Awaitable[CrabClient]], provider: OidcProvider
) -> None:
    client = await connect(sign_up=False)
    options = await client.sign_in_options()
    assert options.passwords and options.provider is None
    message = await refused(
        client.sign_in_with_provider(provider.mint()), Status.FAILED_PRECONDITION
    )
    assert "password" in message


# ---- first and later sign-ins ------------------------------------------------


async def test_the_first_sign_in_makes_the_account_and_later_ones_find_it(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    first = clients(app)
    claims = {"preferred_username": "Alice.Smith", "name": "Alice Smith"}
    me = await first.sign_in_with_provider(provider.mint("sub-alice", claims=claims))
    assert (me.username, me.display_name) == ("alice.smith", "Alice Smith")
    assert (await first.accounts.who_am_i(pb.Empty(), metadata=first.metadata)).id == me.id

    # The per-call check is crab's own token: the provider is not asked again.
    provider.down = True
    assert (await first.accounts.who_am_i(pb.Empty(), metadata=first.metadata)).id == me.id
    provider.down = False

    again = clients(app)
    claims = {"preferred_username": "renamed", "name": "Someone Else"}
    assert (await again.sign_in_with_provider(provider.mint("sub-alice", claims=claims))).id == (
        me.id
    )
    assert [u.username for u in await app.accounts.list_users()] == ["alice.smith"]

    # Signing out of crab ends crab's session; the ID token is not kept.
    await again.sign_out()
    await refused(
        again.accounts.who_am_i(pb.Empty(), metadata=again.metadata), Status.UNAUTHENTICATED
    )


async def test_a_taken_username_gets_a_free_one_and_email_never_matches_an_account(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    await clients(app).sign_up("alice", PASSWORD)
    same_name = {"preferred_username": "alice", "email": "alice@example.com"}
    other = await clients(app).sign_in_with_provider(provider.mint("sub-1", claims=same_name))
    assert other.username == "alice-2"
    # Another subject with the same email is another person to crab.
    third = await clients(app).sign_in_with_provider(provider.mint("sub-2", claims=same_name))
    assert third.username == "alice-3"
    assert len({other.id, third.id}) == 2


@pytest.mark.parametrize(
    ("claims", "username", "display_name"),
    [
        ({"preferred_username": None, "email": "Bob.Jones@example.com"}, "bob.jones", "Bob"),
        ({"preferred_username": None, "email": None}, "sub-bob", "Bob"),
        ({"preferred_username": "Ünïcödé Üser"}, "unicode-user", "Bob"),
        ({"preferred_username": "x"}, "bob", "Bob"),  # too short: the email's
        ({"name": "evil\x1b[2Jname"}, "bob", "bob"),  # a name with controls: the username
        ({"name": "n" * 500}, "bob", "n" * 64),
    ],
)
async def test_usernames_and_names_are_made_valid_from_the_claims(
    sso_server: SsoServer,
    clients: Callable[[Crab], CrabClient],
    provider: OidcProvider,
    claims: dict[str, object],
    username: str,
    display_name: str,
) -> None:
    app = await sso_server()
    base: dict[str, object] = {
        "preferred_username": "bob",
        "email": "bob@example.com",
        "name": "Bob",
    }
    me = await clients(app).sign_in_with_provider(provider.mint("sub-bob", claims=base | claims))
    assert (me.username, me.display_name) == (username, display_name)


async def test_the_username_claim_can_be_chosen(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server(oidc={"username_claim": "email"})
    claims = {"preferred_username": "ignored", "email": "carol@example.com"}
    me = await clients(app).sign_in_with_provider(provider.mint("sub-carol", claims=claims))
    assert me.username == "carol"


async def test_es256_tokens_are_accepted(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    me = await clients(app).sign_in_with_provider(provider.mint("sub-ec", alg="ES256"))
    assert me.username == "sub-ec"  # the provider's default preferred_username: the subject


# ---- refused: UNAUTHENTICATED, nothing created --------------------------------


def _forged(provider: OidcProvider, kind: str) -> str:
    now = int(time.time())
    match kind:
        case "alg none":
            return alg_none(provider.mint())
        case "HS256 signed with the public key":
            return hs256_with_public_key(provider)
        case "wrong issuer":
            return provider.mint(issuer="http://127.0.0.1:1/evil")
        case "wrong audience":
            return provider.mint(audience="someone-else")
        case "expired":
            return provider.mint(issued_at=now - 7200, expires_in=-3600)
        case "not yet valid":
            return provider.mint(not_before=now + 3600)
        case "issued in the future":
            return provider.mint(issued_at=now + 3600)
        case "a key not in the JWKS":
            return provider.foreign_token()
        case "tampered payload":
            return tampered(provider.mint("sub-alice"), sub="sub-root")
        case "no subject":
            return provider.mint(claims={"sub": None})
        case "a subject of 300 characters":
            return provider.mint("s" * 300)
        case "several audiences, another client's":
            return provider.mint(audience=[provider.client_id, "x"], claims={"azp": "x"})
    raise AssertionError(kind)


FORGERIES = [
    "alg none",
    "HS256 signed with the public key",
    "wrong issuer",
    "wrong audience",
    "expired",
    "not yet valid",
    "issued in the future",
    "a key not in the JWKS",
    "tampered payload",
    "no subject",
    "a subject of 300 characters",
    "several audiences, another client's",
]


@pytest.mark.parametrize("kind", FORGERIES)
async def test_forged_and_stale_tokens_are_refused_and_create_nothing(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider, kind: str
) -> None:
    app = await sso_server()
    await refused(
        clients(app).sign_in_with_provider(_forged(provider, kind)), Status.UNAUTHENTICATED
    )
    assert await app.accounts.list_users() == []


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a jwt",
        "a.b.c",
        "!!!.@@@.###",
        "eyJhbGciOiJSUzI1NiJ9.e30",  # two parts
        "W10.e30.e30",  # the header is a JSON list
        "x" * (16 * 1024 + 1),  # over the limit
        "\x00\xff" * 100,
    ],
)
async def test_garbage_instead_of_a_token_is_refused_clearly(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], garbage: str
) -> None:
    app = await sso_server()
    await refused(clients(app).sign_in_with_provider(garbage), Status.UNAUTHENTICATED)
    assert await app.accounts.list_users() == []


async def test_failed_exchanges_from_one_address_are_throttled(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    client = clients(app)
    bad = alg_none(provider.mint())
    # Counted as one account from this address (no username before the token checks).
    for _ in range(app.settings.limits.sign_in_failures):
        await refused(client.sign_in_with_provider(bad), Status.UNAUTHENTICATED)
    # Backing off: even a good token waits (the throttle is per address).
    message = await refused(
        client.sign_in_with_provider(provider.mint()), Status.RESOURCE_EXHAUSTED
    )
    assert "try again" in message


# ---- the provider's keys ------------------------------------------------------


async def test_a_rotated_key_refetches_the_keys_once(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    await clients(app).sign_in_with_provider(provider.mint("sub-a"))
    assert provider.jwks_fetches == 1
    await clients(app).sign_in_with_provider(provider.mint("sub-a"))
    assert provider.jwks_fetches == 1  # kept

    provider.rotate()
    await asyncio.sleep(SSO_REFETCH_GAP * 2)
    # Five sign-ins at once with the new key: one fetch serves them all.
    signed = await asyncio.gather(
        *(clients(app).sign_in_with_provider(provider.mint(f"sub-{n}")) for n in range(5))
    )
    assert len({user.id for user in signed}) == 5
    assert provider.jwks_fetches == 2

    # An unknown key right after: refused without another fetch (a flood of
    # made-up key ids costs the provider nothing).
    await refused(
        clients(app).sign_in_with_provider(provider.foreign_token()), Status.UNAUTHENTICATED
    )
    assert provider.jwks_fetches == 2


async def test_the_provider_down_is_unavailable_and_then_it_works(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    provider.down = True
    message = await refused(clients(app).sign_in_with_provider(provider.mint()), Status.UNAVAILABLE)
    assert "identity provider" in message
    assert await app.accounts.list_users() == []
    provider.down = False
    me = await clients(app).sign_in_with_provider(provider.mint())
    assert me.username == "alice"


async def test_a_provider_that_is_gone_is_unavailable(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    token = provider.mint()
    provider.stop()
    await refused(clients(app).sign_in_with_provider(token), Status.UNAVAILABLE)


# ---- passwords off, and accounts without one ---------------------------------


async def test_no_passwords_leaves_only_the_provider(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server(passwords=False)
    client = clients(app)
    options = await client.sign_in_options()
    assert not options.passwords and not options.sign_up and options.provider is not None
    for call in (client.sign_up("dave", PASSWORD), client.sign_in("dave", PASSWORD)):
        assert "turned off" in await refused(call, Status.FAILED_PRECONDITION)
    await client.sign_in_with_provider(provider.mint("sub-dave"))
    change = client.accounts.change_password(
        pb.ChangePasswordRequest(current_password=PASSWORD, new_password="another password"),
        metadata=client.metadata,
    )
    await refused(change, Status.FAILED_PRECONDITION)


async def test_an_account_of_the_provider_has_no_password(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server()
    client = clients(app)
    me = await client.sign_in_with_provider(
        provider.mint("sub-erin", claims={"preferred_username": "erin"})
    )
    for guess in ("!sso", "", PASSWORD):
        await refused(clients(app).sign_in(me.username, guess or "x"), Status.UNAUTHENTICATED)
    change = client.accounts.change_password(
        pb.ChangePasswordRequest(current_password="!sso", new_password="another password"),
        metadata=client.metadata,
    )
    assert "identity provider" in await refused(change, Status.FAILED_PRECONDITION)


async def test_with_sign_up_closed_only_a_linked_identity_signs_in(
    sso_server: SsoServer, clients: Callable[[Crab], CrabClient], provider: OidcProvider
) -> None:
    app = await sso_server(signup=False)
    token = provider.mint("sub-frank")
    message = await refused(clients(app).sign_in_with_provider(token), Status.PERMISSION_DENIED)
    assert "crab user link" in message and "sub-frank" in message
    assert await app.accounts.list_users() == []

    frank = await app.accounts.create_user("frank", PASSWORD)
    await app.accounts.link_identity("frank", "sub-frank", provider.issuer + "/")
    me = await clients(app).sign_in_with_provider(provider.mint("sub-frank"))
    assert me.id == frank.id
    # The password still works for an account that had one.
    assert (await clients(app).sign_in("frank", PASSWORD)).id == frank.id
