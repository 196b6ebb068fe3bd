"""Message search (/search TEXT): a list of hits; Up/Down select, Enter
opens the chat at the hit with the messages around it loaded, Esc closes."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import Update
from crab.tui.reducers.live import open_chat
from crab.tui.state import AppState, Focus, FoundMessages

CONTEXT = 3  # messages shown below the one opened


def start(state: AppState, query: str) -> Update:
    """`/search TEXT`: a new search (answers to older ones are dropped)."""
    request = state.found.request + 1
    found = FoundMessages(query=query, request=request, searching=True)
    state = replace(state, focus=Focus.FOUND, found=found)
    return Update(state, (fx.SearchMessages(request, query),))


def reduce(state: AppState, action: a.Action) -> Update | None:
    found = state.found
    match action:
        case a.Key(command=Command.SELECT_UP):
            return Update(replace(state, found=replace(found, selected=max(0, found.selected - 1))))
        case a.Key(command=Command.SELECT_DOWN):
            last = max(0, len(found.hits) - 1)
            selected = min(last, found.selected + 1)
            return Update(replace(state, found=replace(found, selected=selected)))
        case a.Key(command=Command.OPEN_FOUND) | a.Submit(text=""):
            if not found.hits:
                return Update(replace(state, notice="no message selected"))
            hit = found.hits[min(found.selected, len(found.hits) - 1)]
            opened = open_chat(replace(state, focus=Focus.INPUT), hit.chat_id)
            effects = (*opened.effects, fx.OpenAt(hit.chat_id, hit.line.id))
            return Update(opened.state, effects)
    return None


def results(state: AppState, action: a.MessagesFound) -> Update:
    if action.request != state.found.request:
        return Update(state)  # a stale answer: another search started since
    found = replace(state.found, hits=action.hits, selected=0, searching=False)
    return Update(replace(state, found=found))


def show(state: AppState, action: a.ShowMessage) -> Update:
    """Scrolls the open chat so the message is near the bottom of the view."""
    if state.active_chat != action.chat_id:
        return Update(state)
    lines = state.history(action.chat_id).lines
    below = sum(1 for line in lines if line.id > action.message_id)
    return Update(replace(state, scroll=max(0, below - CONTEXT)))
