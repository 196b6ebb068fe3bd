"""People search, live as you type: each change starts a numbered request
(the runner debounces); answers to older requests are dropped."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import Update
from crab.tui.state import AppState, Focus


def reduce(state: AppState, action: a.Action) -> Update | None:
    search = state.search
    match action:
        case a.InputChanged(text=text):
            if text == search.query:
                return Update(state)
            request = search.request + 1
            effects = (fx.SearchUsers(request, text.strip()),) if text.strip() else ()
            results = search.results if text.strip() else ()
            changed = replace(search, query=text, request=request, results=results, selected=0)
            return Update(replace(state, search=changed), effects)
        case a.Key(command=Command.SELECT_UP):
            return Update(
                replace(state, search=replace(search, selected=max(0, search.selected - 1)))
            )
        case a.Key(command=Command.SELECT_DOWN):
            last = max(0, len(search.results) - 1)
            return Update(
                replace(state, search=replace(search, selected=min(last, search.selected + 1)))
            )
        case a.Key(command=Command.DM_SELECTED) | a.Submit():
            person = _selected(state)
            if person is None:
                return Update(replace(state, notice="nobody selected"))
            return Update(replace(state, focus=Focus.INPUT), (fx.InviteToDirect(person),))
        case a.Key(command=Command.INVITE_SELECTED):
            person = _selected(state)
            chat = state.chat(state.active_chat)
            if person is None or chat is None or not chat.is_room:
                return Update(replace(state, notice="select someone, with a room open"))
            return Update(replace(state, focus=Focus.INPUT), (fx.InviteToRoom(chat.id, person),))
    return None


def results(state: AppState, action: a.SearchResults) -> Update:
    if action.request != state.search.request:
        return Update(state)  # a stale answer: the query changed since
    return Update(replace(state, search=replace(state.search, results=action.results, selected=0)))


def _selected(state: AppState) -> str | None:
    found = state.search.results
    if not found:
        return None
    return found[min(state.search.selected, len(found) - 1)].username
