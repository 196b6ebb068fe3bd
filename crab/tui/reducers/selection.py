"""Selection mode: a message of the open chat is selected (Ctrl+Up or F5),
Up and Down move it, and single keys act on it: reply, edit, delete, react,
copy, jump to the message it replies to. Esc leaves."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import Update, changes
from crab.tui.state import AppState, Focus, History

PAGE = 10  # the selection stays within this many messages of the view's bottom


def reduce(state: AppState, action: a.Action) -> Update | None:
    match action:
        case a.Key(command=Command.SELECT_UP | Command.SELECT_MESSAGES):
            return move(state, -1)
        case a.Key(command=Command.SELECT_DOWN):
            return move(state, 1)
        case a.Key(command=Command.BACK):
            return Update(changes.cancel(state))
        case a.Key(command=Command.REPLY):
            return changes.start_reply(state, changes.selected(state))
        case a.Key(command=Command.EDIT):
            return changes.start_edit(state, changes.selected(state))
        case a.Key(command=Command.DELETE):
            return changes.delete(state, changes.selected(state))
        case a.Key(command=Command.REACT):
            # The emoji is typed on the line; the selection says where it goes.
            if changes.selected(state) is None:
                return Update(state)
            return Update(changes.fill(replace(state, focus=Focus.INPUT), "/react "))
        case a.Key(command=Command.COPY):
            line = changes.selected(state)
            if line is None or line.deleted:
                return Update(replace(state, notice="nothing to copy"))
            return Update(state, (fx.Copy(line.text),))
        case a.Key(command=Command.JUMP):
            return jump(state)
    return None


def enter(state: AppState) -> Update:
    """Selects the newest message in view."""
    if state.asking is not None:
        return Update(state)  # the line holds a password: answer or Esc first
    history = state.history(state.active_chat)
    ids = [x.id for x in history.lines if x.id]
    if not ids:
        return Update(replace(state, notice="no message to select"))
    # `scroll` of the newest are below the view (the outbox's included).
    pending = sum(1 for x in state.outbox if x.chat_id == state.active_chat)
    at = max(0, len(ids) - 1 - max(0, state.scroll - pending))
    return Update(replace(state, focus=Focus.MESSAGES, selected=ids[at]))


def move(state: AppState, step: int) -> Update:
    history = state.history(state.active_chat)
    at = history.index(state.selected)
    if at is None:
        return enter(state)
    target = at + step
    if target < 0:
        if history.has_more and not history.loading:
            return _load_older(state, history)
        return Update(state)
    target = min(target, len(history.lines) - 1)
    return Update(_show(replace(state, selected=history.lines[target].id), history, target))


def jump(state: AppState) -> Update:
    """Enter: the selection goes to the message the selected one quotes."""
    line = changes.selected(state)
    if line is None or not line.reply_to_id:
        return Update(replace(state, notice="not a reply"))
    history = state.history(state.active_chat)
    at = history.index(line.reply_to_id)
    if at is None:
        if history.has_more and not history.loading:
            update = _load_older(state, history)
            notice = "loading older messages: Enter again to jump"
            return Update(replace(update.state, notice=notice), update.effects)
        return Update(replace(state, notice="the quoted message is not loaded"))
    return Update(_show(replace(state, selected=line.reply_to_id), history, at))


def _show(state: AppState, history: History, at: int) -> AppState:
    """Scrolls so that the message at `at` is in view (near the bottom)."""
    pending = sum(1 for x in state.outbox if x.chat_id == state.active_chat)
    below = len(history.lines) - 1 - at + pending
    scroll = state.scroll
    if below < scroll:
        scroll = below
    elif below > scroll + PAGE:
        scroll = below - PAGE
    return replace(state, scroll=scroll)


def _load_older(state: AppState, history: History) -> Update:
    chat_id = state.active_chat
    assert chat_id is not None
    loading = replace(history, loading=True)
    state = replace(state, histories={**state.histories, chat_id: loading})
    return Update(state, (fx.LoadHistory(chat_id, history.oldest_id),))
