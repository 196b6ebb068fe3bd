"""The sign-in screen: sign in, or sign up with a confirmed password, or
with the team's identity provider (the device flow) when the server has one;
with passwords off, only the provider."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import Update
from crab.tui.state import AppState, Focus, Screen, SignInForm


def reduce(state: AppState, action: a.Action) -> Update | None:
    form = state.sign_in
    match action:
        case a.Started():
            return Update(state, (fx.LoadSignInOptions(),))
        case a.SignInOptionsLoaded(passwords=passwords, sign_up=sign_up, provider=provider):
            allowed = replace(
                form,
                passwords=passwords,
                sign_up_open=sign_up and passwords,
                provider=provider,
                signing_up=form.signing_up and sign_up and passwords,
            )
            return Update(replace(state, sign_in=allowed))
        case a.Key(command=Command.TOGGLE_SIGNUP):
            if form.busy or not form.sign_up_open:
                return Update(state)
            flipped = replace(form, signing_up=not form.signing_up, error="")
            return Update(replace(state, sign_in=flipped))
        case a.Key(command=Command.SIGN_IN_PROVIDER):
            if form.busy:
                return Update(state)
            if form.provider is None:
                error = "this server has no identity provider: sign in with a password"
                return Update(replace(state, sign_in=replace(form, error=error)))
            flow = form.flow + 1
            started = replace(form, busy=True, with_provider=True, flow=flow, code=None, error="")
            return Update(
                replace(state, sign_in=started), (fx.StartDeviceFlow(flow, form.provider),)
            )
        case a.Key(command=Command.BACK):
            if not form.with_provider:
                return Update(state)
            return Update(replace(state, sign_in=_idle(form)), (fx.CancelDeviceFlow(),))
        case a.ProviderCodeReady(flow=flow, code=code):
            if flow != form.flow or not form.with_provider:
                return Update(state)  # a flow cancelled since
            return Update(replace(state, sign_in=replace(form, code=code)))
        case a.SignInSubmit(username=username, password=password, confirm=confirm):
            if form.busy:
                return Update(state)
            error = ""
            if not form.passwords:
                error = "this server signs in with its identity provider only"
            elif not username.strip() or not password:
                error = "enter a username and a password"
            elif form.signing_up and password != confirm:
                error = "the passwords do not match"
            if error:
                return Update(replace(state, sign_in=replace(form, error=error)))
            busy = replace(form, username=username.strip(), busy=True, error="")
            effect = fx.SignIn(username.strip(), password, form.signing_up)
            return Update(replace(state, sign_in=busy), (effect,))
        case a.SignInFailed(error=error):
            return Update(replace(state, sign_in=replace(_idle(form), error=error)))
    return None


def _idle(form: SignInForm) -> SignInForm:
    """Nothing on its way: the form again (the flow number is kept)."""
    return replace(form, busy=False, with_provider=False, code=None)


def signed_in(state: AppState, action: a.SignedIn) -> Update:
    state = replace(
        state,
        me=action.me,
        screen=Screen.CHATS,
        focus=Focus.INPUT,
        sign_in=SignInForm(username=action.me.username),
    )
    return Update(state, (fx.LoadChats(),))
