"""End to end: the installed `crab chat` in tmux signs in with the team's
identity provider against a real `crab serve --oidc-issuer ...` process and
the test provider: the button on the screen, the code and its QR code
drawn, approved at the provider, then the chats.

Needs tmux (CI installs it); without it the test fails rather than skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_tmux_chat import Tmux
from tests.helpers.oidc_provider import OidcProvider
from tests.helpers.process import CrabProcess

pytestmark = pytest.mark.slow  # tmux and a real crab serve process


@pytest.fixture
def sso_server(tmp_path: Path, provider: OidcProvider) -> Iterator[CrabProcess]:
    oidc = ("--oidc-issuer", provider.issuer, "--oidc-client-id", provider.client_id)
    with CrabProcess.start(tmp_path / "data", *oidc, "--oidc-name", "Test") as process:
        yield process


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    found = Tmux(tmp_path)
    try:
        yield found
    finally:
        found.kill()


@pytest.mark.timeout(90)
def test_signing_in_with_the_provider_on_a_real_terminal(
    sso_server: CrabProcess, provider: OidcProvider, tmux: Tmux
) -> None:
    tmux.chat("carol", sso_server.target, size=(100, 40))
    tmux.wait_for_screen("carol", "< Sign in with Test >")
    tmux.wait_for_screen("carol", "< Sign in with Test >  Ctrl+O")
    tmux.keys("carol", "C-o")
    user_code = provider.wait_for_code(20)
    screen = tmux.wait_for_screen("carol", " ".join(user_code))
    assert "/device" in screen and "Esc: cancel" in screen
    # The QR code: rows of half blocks, the finder patterns' full blocks among them.
    assert sum("█" in row and "▀" in row for row in screen.splitlines()) >= 5, screen
    provider.approve(user_code, "sub-carol")
    screen = tmux.wait_for_screen("carol", "carol @ ")  # the status bar of the chats
    assert "Chats" in screen and "Sign in" not in screen


@pytest.mark.timeout(90)
def test_a_denied_sign_in_is_shown_on_the_form(
    sso_server: CrabProcess, provider: OidcProvider, tmux: Tmux
) -> None:
    tmux.chat("dave", sso_server.target)
    tmux.wait_for_screen("dave", "< Sign in with Test >")
    tmux.keys("dave", "C-o")
    provider.deny(provider.wait_for_code(20))
    screen = tmux.wait_for_screen("dave", "denied")
    assert "< Sign in with Test >" in screen and "Username:" in screen
