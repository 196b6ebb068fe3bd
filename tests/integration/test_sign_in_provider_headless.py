"""The sign-in screen with the team's identity provider, the whole client
headless against a real in-process server that trusts the test provider
(tests/helpers/oidc_provider.py): the button, the code, approved at the
provider, into the chats; denied, expired, the provider down, Esc."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crab.tui.state import Link, Screen
from tests.helpers.oidc_provider import OidcProvider
from tests.helpers.server import SsoServer
from tests.integration.test_app_headless import Driver, person, runner_tasks

CTRL_O = "\x0f"
ESC = "\x1b"


async def offered(driver: Driver) -> None:
    await driver.until(lambda s: s.sign_in.provider is not None)
    assert driver.state.sign_in.provider is not None
    assert driver.state.sign_in.provider.name == "Test"


async def code_shown(driver: Driver, provider: OidcProvider) -> str:
    """The user code the provider issued, once the client shows it."""
    user_code = await asyncio.to_thread(provider.wait_for_code, 10.0)
    state = await driver.until(lambda s: s.sign_in.code is not None)
    assert state.sign_in.code is not None and state.sign_in.code.user_code == user_code
    assert driver.app.app.layout.current_window is driver.app.sign_in.code
    return user_code


@pytest.mark.timeout(60)
async def test_signing_in_with_the_provider_lands_in_the_chats_as_the_new_user(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    crab = await sso_server()
    async with person(crab, tmp_path / "carol") as carol:
        await offered(carol)
        assert carol.state.sign_in.passwords  # both ways in: the form stays
        carol.type(CTRL_O)
        user_code = await code_shown(carol, provider)
        await asyncio.to_thread(provider.approve, user_code, "sub-carol")
        state = await carol.until(lambda s: s.screen is Screen.CHATS)
        assert state.me is not None and state.me.username == "carol"
        await carol.until(lambda s: s.connection.link is Link.CONNECTED)
        # The session is crab's own: a message goes through like anyone's.
        await carol.create_room("sso")
    # Its tokens were saved: the next start opens straight into the chats.
    async with person(crab, tmp_path / "carol") as again:
        state = await again.until(lambda s: s.screen is Screen.CHATS and s.me is not None)
        await again.until(lambda s: any(c.name == "sso" for c in s.chats))


@pytest.mark.timeout(60)
async def test_without_passwords_only_the_provider_is_offered_and_enter_chooses_it(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    crab = await sso_server(passwords=False)
    async with person(crab, tmp_path / "dave") as dave:
        await offered(dave)
        await dave.until(lambda s: not s.sign_in.passwords)
        # The fields are gone: the provider's button has the focus.
        assert dave.app.sign_in.fields() == [dave.app.sign_in.provider]
        await dave.until(lambda _: dave.app.app.layout.current_window is dave.app.sign_in.provider)
        dave.type("\r")
        user_code = await code_shown(dave, provider)
        await asyncio.to_thread(provider.approve, user_code, "sub-dave")
        state = await dave.until(lambda s: s.screen is Screen.CHATS)
        assert state.me is not None and state.me.username == "dave"
        # Signed out, the screen asks the server again: still no passwords.
        await dave.until(lambda s: s.connection.link is Link.CONNECTED)
        await dave.say("/logout")
        await dave.until(lambda s: s.screen is Screen.SIGN_IN)
        state = await dave.until(lambda s: s.sign_in.provider is not None)
        assert not state.sign_in.passwords
        await dave.until(lambda _: dave.app.app.layout.current_window is dave.app.sign_in.provider)


@pytest.mark.timeout(60)
async def test_denied_at_the_provider_is_shown_in_place(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    crab = await sso_server()
    async with person(crab, tmp_path / "erin") as erin:
        await offered(erin)
        erin.type(CTRL_O)
        user_code = await code_shown(erin, provider)
        await asyncio.to_thread(provider.deny, user_code)
        state = await erin.until(lambda s: bool(s.sign_in.error))
        assert "denied" in state.sign_in.error
        assert state.screen is Screen.SIGN_IN and not state.sign_in.busy
        assert state.sign_in.code is None and not state.sign_in.with_provider


@pytest.mark.timeout(60)
async def test_an_expired_code_is_shown_in_place(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    crab = await sso_server()
    async with person(crab, tmp_path / "frank") as frank:
        await offered(frank)
        frank.type(CTRL_O)
        user_code = await code_shown(frank, provider)
        await asyncio.to_thread(provider.expire, user_code)
        state = await frank.until(lambda s: bool(s.sign_in.error))
        assert "expired" in state.sign_in.error.lower()
        assert state.screen is Screen.SIGN_IN and not state.sign_in.busy


@pytest.mark.timeout(60)
async def test_the_server_refusing_the_providers_token_is_shown_in_place(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    # The provider's tokens are not for a server of another audience.
    crab = await sso_server(oidc={"audience": "another-client"})
    async with person(crab, tmp_path / "ivan") as ivan:
        await offered(ivan)
        ivan.type(CTRL_O)
        user_code = await code_shown(ivan, provider)
        await asyncio.to_thread(provider.approve, user_code, "sub-ivan")
        state = await ivan.until(lambda s: bool(s.sign_in.error))
        assert "refused the sign-in" in state.sign_in.error
        assert state.screen is Screen.SIGN_IN and not state.sign_in.busy
        assert ivan.app.runner is not None and ivan.app.runner.client.tokens is None


@pytest.mark.timeout(60)
async def test_the_provider_down_is_shown_in_place(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    crab = await sso_server()
    async with person(crab, tmp_path / "gina") as gina:
        await offered(gina)
        provider.down = True
        gina.type(CTRL_O)
        state = await gina.until(lambda s: bool(s.sign_in.error))
        assert state.screen is Screen.SIGN_IN and not state.sign_in.busy
        assert not state.sign_in.with_provider


@pytest.mark.timeout(60)
async def test_esc_cancels_the_flow_and_its_task(
    sso_server: SsoServer, provider: OidcProvider, tmp_path: Path
) -> None:
    crab = await sso_server()
    async with person(crab, tmp_path / "hank") as hank:
        await offered(hank)
        hank.type(CTRL_O)
        await code_shown(hank, provider)
        assert hank.app.runner is not None and hank.app.runner.device_flow is not None
        flow = hank.app.runner.device_flow
        hank.type(ESC)
        state = await hank.until(lambda s: not s.sign_in.with_provider)
        assert state.sign_in.code is None and not state.sign_in.busy and not state.sign_in.error
        await asyncio.wait({flow}, timeout=10)
        assert flow.cancelled()
        assert flow not in runner_tasks()
        # Back on the form: the username field has the focus again.
        await hank.until(
            lambda _: hank.app.app.layout.current_window is hank.app.sign_in.username.window
        )
        # A second flow after the cancelled one goes all the way.
        hank.type(CTRL_O)
        user_code = await code_shown(hank, provider)
        await asyncio.to_thread(provider.approve, user_code, "sub-hank")
        await hank.until(lambda s: s.screen is Screen.CHATS)
