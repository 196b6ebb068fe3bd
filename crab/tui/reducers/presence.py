"""Read receipts, typing and presence: news of other people, never stored
by the server. Receipts keep each member's read position per chat (the
view writes "seen by" under the newest message each has read); a typist is
shown until TYPING_SECONDS pass without news or their message arrives;
presence is kept per person. What I type in a chat (not a slash command)
asks for a typing notice; the runner sends at most one every few seconds."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.reducers import Update
from crab.tui.state import (
    AppState,
    Focus,
    Line,
    PresenceItem,
    PresenceState,
    Screen,
    Typist,
)

TYPING_SECONDS = 5.0  # a typist is forgotten this long after their last notice


def reduce(state: AppState, action: a.Action) -> Update | None:
    match action:
        case a.PresenceLoaded(chat_id=chat_id, read=read, presence=presence):
            state = _read(state, chat_id, read)
            return Update(replace(state, presence=_merged(state, presence)))
        case a.PeersLoaded(peers=peers, presence=presence):
            return Update(
                replace(
                    state,
                    peers={**state.peers, **peers},
                    presence=_merged(state, presence),
                )
            )
        case a.ReadMoved(chat_id=chat_id, user_id=user_id, last_read_id=last_read_id):
            return Update(_read(state, chat_id, {user_id: last_read_id}))
        case a.PresenceChanged(user_id=user_id, presence=presence):
            return Update(replace(state, presence={**state.presence, user_id: presence}))
        case a.TypingSeen(chat_id=chat_id, person=person):
            if state.me is not None and person.id == state.me.id:
                return Update(state)
            serial = state.typing_serial + 1
            others = tuple(
                t for t in state.typing if (t.chat_id, t.person.id) != (chat_id, person.id)
            )
            typing = (*others, Typist(chat_id, person, serial))
            return Update(
                replace(state, typing=typing, typing_serial=serial),
                (fx.ExpireTyping(serial, TYPING_SECONDS),),
            )
        case a.TypingExpired(serial=serial):
            return Update(
                replace(state, typing=tuple(t for t in state.typing if t.serial != serial))
            )
        case a.InputChanged(text=text):
            return Update(state, _typing(state, text))
    return None


def _merged(state: AppState, loaded: dict[int, PresenceItem]) -> dict[int, PresenceItem]:
    """A loaded snapshot over what is known. A read made while someone was
    leaving can say offline before the server wrote when: it arrives after
    the news that carried the time, and must not rub that time out."""
    out = {**state.presence}
    for user_id, item in loaded.items():
        known = out.get(user_id)
        if (
            item.state is PresenceState.OFFLINE
            and item.last_seen is None
            and known is not None
            and known.state is PresenceState.OFFLINE
        ):
            item = known
        out[user_id] = item
    return out


def _typing(state: AppState, text: str) -> tuple[fx.Effect, ...]:
    chat_id = state.active_chat
    if (
        chat_id is None
        or state.screen is not Screen.CHATS
        or state.focus is Focus.SEARCH
        or state.asking is not None
        or state.editing
        or not text.strip()
        or text.startswith("/")
    ):
        return ()
    return (fx.SendTyping(chat_id),)


def _read(state: AppState, chat_id: int, read: dict[int, int]) -> AppState:
    """Read positions only move forward (a late answer cannot move one back)."""
    history = state.histories.get(chat_id)
    if history is None:
        return state
    moved = {u: p for u, p in read.items() if p > history.read.get(u, 0)}
    if not moved:
        return state
    history = replace(history, read={**history.read, **moved})
    return replace(state, histories={**state.histories, chat_id: history})


def arrived(state: AppState, line: Line) -> AppState:
    """A message: its sender has read up to it and is no longer typing."""
    state = _read(state, line.chat_id, {line.sender.id: line.id})
    if any(t.chat_id == line.chat_id and t.person.id == line.sender.id for t in state.typing):
        typing = tuple(
            t for t in state.typing if (t.chat_id, t.person.id) != (line.chat_id, line.sender.id)
        )
        state = replace(state, typing=typing)
    return state
