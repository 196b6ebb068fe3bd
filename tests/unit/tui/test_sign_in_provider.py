"""The sign-in screen with an identity provider: options from the server,
the device flow started, its code shown, cancelled, failed, and signed in."""

from __future__ import annotations

from dataclasses import replace

from crab.client.device_flow import DeviceCode
from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.from_server import MAX_PROVIDER_NAME, MAX_URI, MAX_USER_CODE, provider, provider_code
from crab.tui.keys import Command
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, Provider, ProviderCode, Screen
from crab.tui.views.device_code import code_view
from tests.helpers.tui import ALICE

TEST = Provider("Test", "http://127.0.0.1:9/", "crab", ("openid", "profile"))
CODE = ProviderCode("WDJB-MJHT", "http://127.0.0.1:9/device", "http://127.0.0.1:9/device?c=WDJB")


def offered(passwords: bool = True, sign_up: bool = True) -> AppState:
    return reduce(AppState(server="s:1"), a.SignInOptionsLoaded(passwords, sign_up, TEST)).state


def started() -> AppState:
    return reduce(offered(), a.Key(Command.SIGN_IN_PROVIDER)).state


def test_the_sign_in_screen_asks_the_server_how_one_signs_in_at_start() -> None:
    assert reduce(AppState(server="s:1"), a.Started()).effects == (fx.LoadSignInOptions(),)
    # Already in the chats (a saved session): nothing to ask.
    chats = replace(AppState(server="s:1"), screen=Screen.CHATS, me=ALICE)
    assert reduce(chats, a.Started()).effects == ()


def test_signed_out_asks_again_for_the_options() -> None:
    update = reduce(replace(AppState(server="s:1"), screen=Screen.CHATS), a.SignedOut("bye"))
    assert fx.LoadSignInOptions() in update.effects


def test_options_keep_the_provider_and_what_passwords_may_do() -> None:
    form = offered().sign_in
    assert form.provider == TEST and form.passwords and form.sign_up_open
    closed = offered(passwords=False).sign_in
    assert not closed.passwords and not closed.sign_up_open
    # Passwords off: no password sign-in, no sign-up, whatever is typed.
    update = reduce(offered(passwords=False), a.SignInSubmit("alice", "secret-pass"))
    assert update.effects == () and "identity provider" in update.state.sign_in.error
    toggled = reduce(offered(passwords=False), a.Key(Command.TOGGLE_SIGNUP)).state
    assert not toggled.sign_in.signing_up
    no_sign_up = reduce(offered(sign_up=False), a.Key(Command.TOGGLE_SIGNUP)).state
    assert not no_sign_up.sign_in.signing_up


def test_choosing_the_provider_starts_the_device_flow() -> None:
    update = reduce(offered(), a.Key(Command.SIGN_IN_PROVIDER))
    assert update.effects == (fx.StartDeviceFlow(1, TEST),)
    form = update.state.sign_in
    assert form.busy and form.with_provider and form.code is None and form.flow == 1
    # A second press while it runs starts nothing more.
    assert reduce(update.state, a.Key(Command.SIGN_IN_PROVIDER)).effects == ()
    # A password sign-in meanwhile neither.
    assert reduce(update.state, a.SignInSubmit("alice", "secret-pass")).effects == ()


def test_without_a_provider_the_key_says_so_and_starts_nothing() -> None:
    update = reduce(AppState(server="s:1"), a.Key(Command.SIGN_IN_PROVIDER))
    assert update.effects == () and "no identity provider" in update.state.sign_in.error


def test_the_code_shows_once_the_provider_gives_it() -> None:
    state = reduce(started(), a.ProviderCodeReady(1, CODE)).state
    assert state.sign_in.code == CODE and state.sign_in.busy


def test_esc_cancels_the_flow_and_a_late_code_of_it_is_dropped() -> None:
    shown = reduce(started(), a.ProviderCodeReady(1, CODE)).state
    update = reduce(shown, a.Key(Command.BACK))
    assert update.effects == (fx.CancelDeviceFlow(),)
    form = update.state.sign_in
    assert not form.busy and not form.with_provider and form.code is None
    assert reduce(update.state, a.ProviderCodeReady(1, CODE)).state.sign_in.code is None
    # The next flow has the next number: only its code shows.
    again = reduce(update.state, a.Key(Command.SIGN_IN_PROVIDER))
    assert again.effects == (fx.StartDeviceFlow(2, TEST),)
    assert reduce(again.state, a.ProviderCodeReady(1, CODE)).state.sign_in.code is None
    assert reduce(again.state, a.ProviderCodeReady(2, CODE)).state.sign_in.code == CODE
    # Esc with nothing on its way does nothing.
    assert reduce(offered(), a.Key(Command.BACK)).effects == ()


def test_a_failure_is_shown_in_place_and_clears_the_flow() -> None:
    shown = reduce(started(), a.ProviderCodeReady(1, CODE)).state
    failed = reduce(shown, a.SignInFailed("you declined the sign-in at Test")).state
    form = failed.sign_in
    assert form.error == "you declined the sign-in at Test"
    assert not form.busy and not form.with_provider and form.code is None
    assert failed.screen is Screen.SIGN_IN and form.provider == TEST


def test_signed_in_through_the_provider_lands_in_the_chats() -> None:
    update = reduce(started(), a.SignedIn(ALICE))
    assert update.state.screen is Screen.CHATS and update.effects == (fx.LoadChats(),)


def test_the_code_view_shows_the_page_the_code_spaced_and_the_qr_when_it_fits() -> None:
    form = reduce(started(), a.ProviderCodeReady(1, CODE)).state.sign_in
    text = "".join(f[1] for f in code_view(form, 100, 40))
    assert CODE.verification_uri in text and "W D J B - M J H T" in text
    assert "█" in text and "Esc: cancel" in text and "waiting" in text
    small = "".join(f[1] for f in code_view(form, 100, 12))
    assert "W D J B - M J H T" in small and "█" not in small
    asking = "".join(f[1] for f in code_view(started().sign_in, 100, 40))
    assert "asking Test" in asking


def test_a_hostile_provider_name_is_inert_and_cut() -> None:
    found = provider(
        pb.IdentityProvider(
            name="\x1b]52;c;ZXZpbA==\x07" + "x" * 10_000,
            issuer="http://127.0.0.1:9/",
            client_id="crab",
            scopes=["openid"],
        )
    )
    assert found is not None
    assert "\x1b" not in found.name and "\x07" not in found.name
    assert len(found.name) <= MAX_PROVIDER_NAME
    # No issuer or client id: no single sign-on, whatever else came.
    assert provider(pb.IdentityProvider(name="Test", client_id="crab")) is None
    assert provider(None) is None
    nameless = provider(pb.IdentityProvider(issuer="http://i/", client_id="c"))
    assert nameless is not None and nameless.name


def test_a_hostile_code_from_the_provider_is_inert_and_cut() -> None:
    code = provider_code(
        DeviceCode(
            user_code="\x1b[2J" + "A" * 10_000,
            verification_uri="http://x/\x1b[31m" + "p" * 100_000,
            verification_uri_complete="\n" * 5000,
            device_code="d",
            interval=5.0,
            expires_at=0.0,
        )
    )
    assert "\x1b" not in code.user_code + code.verification_uri
    assert len(code.user_code) <= MAX_USER_CODE and len(code.verification_uri) <= MAX_URI
    assert "\n" not in code.verification_uri_complete
    form = replace(started().sign_in, code=code)
    drawn = "".join(f[1] for f in code_view(form, 100, 40))
    assert "\x1b" not in drawn
