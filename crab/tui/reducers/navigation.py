"""Moving between chats and through a chat's history."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import Update
from crab.tui.reducers.live import open_chat
from crab.tui.state import AppState, History
from crab.tui.views import messages as view
from crab.tui.views.panels import help_rows

PAGE = 10  # load the page before when this near the top of what is loaded
WHEEL = 3  # messages a turn of the mouse wheel scrolls


def reduce(state: AppState, action: a.Action) -> Update | None:
    match action:
        case a.OpenChat(chat_id=chat_id):
            return open_chat(state, chat_id)
        case a.Key(command=Command.NEXT_CHAT | Command.PREVIOUS_CHAT as command):
            if not state.chats:
                return Update(state)
            ids = [c.id for c in state.chats]
            at = ids.index(state.active_chat) if state.active_chat in ids else 0
            step = 1 if command == Command.NEXT_CHAT else -1
            return open_chat(state, ids[(at + step) % len(ids)])
        case a.Key(command=Command.OPEN_NUMBERED, number=number):
            # Alt+N: the chat numbered N in the chat list (its order).
            if 1 <= number <= len(state.chats):
                return open_chat(state, state.chats[number - 1].id)
            return Update(state)
        case a.Key(command=Command.SCROLL_UP):
            return scroll_up(state)
        case a.Wheel(up=up):
            return wheel(state, up)
        case a.Key(command=Command.SCROLL_DOWN):
            scroll, cut = view.page_down(state, *state.pane)
            return Update(replace(state, scroll=scroll, scroll_cut=cut))
        case a.Key(command=Command.SCROLL_END):
            return Update(replace(state, scroll=0, scroll_cut=(0, 0)))
        case a.Key(command=Command.SCROLL_TOP) if state.active_chat is not None:
            top = view.max_scroll(state, *state.pane)
            return _load_older(replace(state, scroll=top, scroll_cut=(0, 0)))
        case a.Key(command=Command.TOGGLE_SIDEBAR):
            return Update(replace(state, sidebar=not state.sidebar_shown()))
    return None


def scroll_up(state: AppState) -> Update:
    chat_id = state.active_chat
    if chat_id is None:
        return Update(state)
    # By a screen (the view measures it), never past the top of the chat.
    scroll, cut = view.page_up(state, *state.pane)
    return _load_older(replace(state, scroll=scroll, scroll_cut=cut))


def wheel(state: AppState, up: bool) -> Update:
    """WHEEL messages back or forward, never past the top nor the newest."""
    if state.active_chat is None:
        return Update(state)
    if not up:
        return Update(replace(state, scroll=max(0, state.scroll - WHEEL), scroll_cut=(0, 0)))
    most = view.max_scroll(state, *state.pane)
    return _load_older(replace(state, scroll=min(most, state.scroll + WHEEL), scroll_cut=(0, 0)))


def _load_older(state: AppState) -> Update:
    assert state.active_chat is not None
    chat_id = state.active_chat
    history = state.history(chat_id)
    scroll = state.scroll
    # Near the top of what is loaded: fetch the page before it.
    if scroll + 2 * PAGE >= len(history.lines) and history.has_more and not history.loading:
        loading: History = replace(history, loading=True)
        state = replace(state, histories={**state.histories, chat_id: loading})
        return Update(state, (fx.LoadHistory(chat_id, history.oldest_id),))
    return Update(state)


def help_keys(state: AppState, action: a.Action) -> Update | None:
    """While the help is open, Up/Down scroll it a row, PgUp/PgDn a page."""
    width, height = state.pane
    page = max(1, height - 2)
    match action:
        case a.Key(command=Command.SELECT_UP):
            step = -1
        case a.Key(command=Command.SELECT_DOWN):
            step = 1
        case a.Key(command=Command.SCROLL_UP):
            step = -page
        case a.Key(command=Command.SCROLL_DOWN):
            step = page
        case _:
            return None
    most = max(0, len(help_rows(width)) - (height - 1))  # a row for the title
    return Update(replace(state, help_scroll=max(0, min(most, state.help_scroll + step))))
