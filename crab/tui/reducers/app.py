"""The root reducer. Global keys first, then the component that has focus,
then switching components (tabs), then server data, which any screen takes.
Whichever of them shows a new notice, it is cleared NOTICE_SECONDS later."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import (
    Reducer,
    Update,
    calls,
    changes,
    found,
    invites,
    live,
    message_line,
    navigation,
    presence,
    room_admin,
    search,
    selection,
    sign_in,
)
from crab.tui.state import AppState, Focus, Screen, SignInForm

NOTICE_SECONDS = 6.0  # how long a notice stays in the status bar


def global_keys(state: AppState, action: a.Action) -> Update | None:
    match action:
        case a.Key(command=Command.QUIT):
            return Update(replace(state, quitting=True), (fx.Quit(),))
        case a.Key(command=Command.HELP):
            focus = Focus.INPUT if state.focus is Focus.HELP else Focus.HELP
            return Update(replace(state, focus=focus, help_scroll=0))
        case a.PaneResized(width=width, height=height, columns=columns):
            return Update(replace(state, pane=(width, height), columns=columns))
        case a.SignedIn():
            return sign_in.signed_in(state, action)
        case a.SignedOut(reason=reason):
            # The notice serial goes on: a timer still running must not clear
            # a notice of the next session early.
            fresh = AppState(
                server=state.server,
                bell=state.bell,
                order=state.order,
                notice_serial=state.notice_serial,
            )
            form = SignInForm(username=state.me.username if state.me else "", error=reason)
            # Asked again: the server may have changed how one signs in.
            return Update(replace(fresh, sign_in=form), (fx.LoadSignInOptions(),))
        case a.SearchResults():
            return search.results(state, action)
        case a.MessagesFound():
            return found.results(state, action)
        case a.ShowMessage():
            return found.show(state, action)
        case a.NoticeExpired(serial=serial):
            if serial != state.notice_serial or not state.notice:
                return Update(state)  # a newer notice is showing, or none
            return Update(replace(state, notice=""))
    return None


def component(state: AppState, action: a.Action) -> Update | None:
    """The reducer of whatever has focus."""
    if state.screen is Screen.SIGN_IN:
        return sign_in.reduce(state, action)
    for reducer in _FOCUSED.get(state.focus, ()):
        result = reducer(state, action)
        if result is not None:
            return result
    return None


def tabs(state: AppState, action: a.Action) -> Update | None:
    if state.screen is not Screen.CHATS:
        return None
    match action:
        case a.Key(command=Command.INVITES):
            return Update(replace(state, focus=Focus.INVITES))
        case a.Key(command=Command.SEARCH):
            return Update(replace(state, focus=Focus.SEARCH))
        case a.Key(command=Command.SELECT_MESSAGES):
            return selection.enter(state)
        case a.Key(command=Command.NAMES):
            return Update(replace(state, focus=Focus.NAMES))
        case a.Key(command=Command.BACK):
            # Also cancels an edit or a reply in progress.
            return Update(changes.cancel(state))
    return None


_FOCUSED: dict[Focus, tuple[Reducer, ...]] = {
    Focus.INPUT: (message_line.reduce, navigation.reduce),
    Focus.INVITES: (invites.reduce, message_line.reduce, navigation.reduce),
    Focus.SEARCH: (search.reduce, navigation.reduce),
    Focus.FOUND: (found.reduce, message_line.reduce, navigation.reduce),
    Focus.HELP: (navigation.help_keys, message_line.reduce, navigation.reduce),
    Focus.MESSAGES: (selection.reduce, message_line.reduce, navigation.reduce),
    Focus.NAMES: (message_line.reduce, navigation.reduce),
}

_CHAIN: tuple[Reducer, ...] = (
    global_keys,
    calls.reduce,
    component,
    tabs,
    live.reduce,
    room_admin.reduce,
    presence.reduce,
)


def reduce(state: AppState, action: a.Action) -> Update:
    for reducer in _CHAIN:
        result = reducer(state, action)
        if result is not None:
            return _time_notice(state, _settled(result))
    return Update(state)


def _settled(update: Update) -> Update:
    """Back at the newest message, no message waits below."""
    if update.state.scroll or not update.state.new_below:
        return update
    return Update(replace(update.state, new_below=0), update.effects)


def _time_notice(before: AppState, update: Update) -> Update:
    """A new notice gets the next serial and a timer that clears it."""
    after = update.state
    if not after.notice or after.notice == before.notice:
        return update
    serial = before.notice_serial + 1
    timer = fx.ExpireNotice(serial, NOTICE_SECONDS)
    return Update(replace(after, notice_serial=serial), (*update.effects, timer))
