"""Changing messages: edit, delete, react and reply, by slash command or on
the selected message (reducers/selection.py). Pure: each asks the server by
an effect, and the changed message comes back as MessageChanged, applied in
reducers/live.py like anybody else's change."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import effects as fx
from crab.tui.reducers import Update
from crab.tui.state import AppState, Focus, Line

EMOJI_LIMIT = 16  # characters in a reaction (the server's limit, crab.proto)


def _notice(state: AppState, text: str) -> Update:
    return Update(replace(state, notice=text))


def fill(state: AppState, text: str) -> AppState:
    """Puts `text` on the message line (the app copies it there)."""
    return replace(state, fill=text, fill_serial=state.fill_serial + 1)


def my_last(state: AppState) -> Line | None:
    """My newest message in the open chat that is still there."""
    if state.me is None:
        return None
    for line in reversed(state.history(state.active_chat).lines):
        if line.id and line.sender.id == state.me.id and not line.deleted:
            return line
    return None


def still_sending(state: AppState) -> Update | None:
    """ "My last message" is not known while a message of mine to the open
    chat waits for its acknowledgement: /edit, /delete and Up would act on
    the one before it. Refused until it is stored."""
    if any(x.chat_id == state.active_chat for x in state.outbox):
        return _notice(state, "your last message is still being sent; try again in a moment")
    return None


def selected(state: AppState) -> Line | None:
    return state.history(state.active_chat).find(state.selected)


def cancel(state: AppState) -> AppState:
    """Esc: no edit, reply or selection any more (an edit empties the line)."""
    if state.editing:
        state = fill(state, "")
    return replace(state, editing=0, replying=0, selected=0, focus=Focus.INPUT)


def start_edit(state: AppState, line: Line | None) -> Update:
    if line is None:
        return _notice(state, "no message of yours to edit here")
    if state.me is None or line.sender.id != state.me.id:
        return _notice(state, "only your own messages can be edited")
    if line.deleted:
        return _notice(state, "a deleted message cannot be edited")
    state = replace(state, editing=line.id, replying=0, selected=0, focus=Focus.INPUT)
    # The line above the input says "editing" (views/panels.py composing).
    return Update(replace(fill(state, line.text), notice=""))


def save_edit(state: AppState, text: str) -> Update:
    """Enter while editing: the line's text replaces the message's."""
    line = state.history(state.active_chat).find(state.editing)
    state = replace(state, editing=0)
    if line is None or line.deleted:
        return _notice(state, "the message being edited is gone")
    if not text.strip():
        return _notice(state, "an edit cannot be empty: /delete deletes the message")
    if text == line.text:
        return Update(replace(state, notice=""))
    return Update(replace(state, notice=""), (fx.EditMessage(line.chat_id, line.id, text),))


def edit(state: AppState, text: str) -> Update:
    """/edit TEXT: my last message's text becomes TEXT."""
    if (waiting := still_sending(state)) is not None:
        return waiting
    line = my_last(state)
    if line is None:
        return _notice(state, "no message of yours to edit here")
    if not text:
        return start_edit(state, line)
    return save_edit(replace(state, editing=line.id), text)


def delete(state: AppState, line: Line | None) -> Update:
    if line is None:
        return _notice(state, "no message of yours to delete here")
    chat = state.chat(line.chat_id)
    me = state.me.id if state.me else 0
    owner = chat is not None and chat.is_room and chat.owner_id == me
    if line.sender.id != me and not owner:
        return _notice(state, "only the sender or the room's owner can delete a message")
    if line.deleted:
        return _notice(state, "already deleted")
    return Update(state, (fx.DeleteMessage(line.chat_id, line.id),))


def react(state: AppState, line: Line | None, emoji: str) -> Update:
    """Toggles my reaction `emoji` on the message."""
    emoji = emoji.strip()
    if not emoji:
        return _notice(state, "usage: /react EMOJI (on the selected or the last message)")
    if len(emoji) > EMOJI_LIMIT or any(ch.isspace() for ch in emoji):
        return _notice(
            state, f"a reaction is one emoji or word of at most {EMOJI_LIMIT} characters"
        )
    if line is None:
        return _notice(state, "no message to react to")
    if line.deleted:
        return _notice(state, "a deleted message takes no reactions")
    state = replace(state, selected=0, focus=Focus.INPUT)
    return Update(state, (fx.React(line.chat_id, line.id, emoji),))


def react_command(state: AppState, emoji: str) -> Update:
    """/react EMOJI: on the selected message, else the newest one that takes
    reactions (a tombstone below it does not get in the way)."""
    line = selected(state)
    if line is None:
        lines = [x for x in state.history(state.active_chat).lines if x.id and not x.deleted]
        line = lines[-1] if lines else None
    return react(state, line, emoji)


def start_reply(state: AppState, line: Line | None) -> Update:
    if line is None:
        return _notice(state, "no message to reply to")
    if line.deleted:
        return _notice(state, "a deleted message cannot be replied to")
    state = replace(state, replying=line.id, selected=0, focus=Focus.INPUT)
    return Update(replace(state, notice=""))
