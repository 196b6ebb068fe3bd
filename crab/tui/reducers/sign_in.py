"""The sign-in screen: sign in, or sign up with a confirmed password."""

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
        case a.Key(command=Command.TOGGLE_SIGNUP):
            flipped = replace(form, signing_up=not form.signing_up, error="")
            return Update(replace(state, sign_in=flipped))
        case a.SignInSubmit(username=username, password=password, confirm=confirm):
            if form.busy:
                return Update(state)
            error = ""
            if not username.strip() or not password:
                error = "enter a username and a password"
            elif form.signing_up and password != confirm:
                error = "the passwords do not match"
            if error:
                return Update(replace(state, sign_in=replace(form, error=error)))
            busy = replace(form, username=username.strip(), busy=True, error="")
            effect = fx.SignIn(username.strip(), password, form.signing_up)
            return Update(replace(state, sign_in=busy), (effect,))
        case a.SignInFailed(error=error):
            return Update(replace(state, sign_in=replace(form, busy=False, error=error)))
    return None


def signed_in(state: AppState, action: a.SignedIn) -> Update:
    state = replace(
        state,
        me=action.me,
        screen=Screen.CHATS,
        focus=Focus.INPUT,
        sign_in=SignInForm(username=action.me.username),
    )
    return Update(state, (fx.LoadChats(),))
