"""Rooms and people: the owner's /rename, /topic and /kick, /names, my
/nick and /password, and the frames that keep names, topics and member
lists current (chat_updated, member_removed, user_updated)."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.reducers import Update
from crab.tui.state import AppState, Asking, Focus, History, Line, Person

ADMIN = {"rename", "topic", "kick", "names", "nick", "password"}


def command(state: AppState, name: str, arg: str) -> Update:
    """One of ADMIN, typed on the message line."""
    chat = state.chat(state.active_chat)
    match name:
        case "nick":
            if not arg:
                return _say(state, "usage: /nick NAME")
            return Update(state, (fx.SetDisplayName(arg),))
        case "password":
            asking = replace(
                state, focus=Focus.INPUT, asking=Asking.CURRENT_PASSWORD, current_password=""
            )
            return _say(asking, "current password (Esc cancels):")
        case "names":
            if chat is None:
                return _say(state, "no chat open")
            return Update(replace(state, focus=Focus.NAMES))
    if chat is None or not chat.is_room:
        return _say(state, f"open a room first, then /{name}")
    if state.me is not None and chat.owner_id != state.me.id:
        owner = _member(state, chat.id, chat.owner_id)
        by = f" ({owner.username})" if owner else ""
        return _say(state, f"only the room's owner{by} can /{name}")
    match name:
        case "rename":
            if not arg:
                return _say(state, "usage: /rename NAME")
            return Update(state, (fx.RenameRoom(chat.id, arg),))
        case "topic":
            return Update(state, (fx.SetTopic(chat.id, arg),))
    # /kick
    username = arg.lstrip("@").lower()
    if not username:
        return _say(state, "usage: /kick USER")
    if state.me is not None and username == state.me.username:
        return _say(state, "you cannot remove yourself; /leave instead")
    target = next((p for p in state.history(chat.id).members if p.username == username), None)
    if target is None:
        return _say(state, f"no member named {username} in #{chat.name}")
    return Update(state, (fx.RemoveMember(chat.id, target.id, target.username),))


def answer(state: AppState, text: str) -> Update:
    """The message line's answer while /password asks (never sent as a message)."""
    if state.asking is Asking.CURRENT_PASSWORD:
        if not text:
            return cancel(state)
        asked = replace(state, asking=Asking.NEW_PASSWORD, current_password=text)
        return _say(asked, "new password (Esc cancels):")
    current = state.current_password
    state = replace(state, asking=None, current_password="")  # not kept once the call goes
    if not text:
        return _say(state, "password not changed")
    return Update(
        replace(state, notice="changing your password..."), (fx.ChangePassword(current, text),)
    )


def cancel(state: AppState) -> Update:
    return _say(replace(state, asking=None, current_password=""), "password not changed")


def reduce(state: AppState, action: a.Action) -> Update | None:
    """Frames and results: whatever has focus."""
    match action:
        case a.ChatUpdated():
            return Update(_chat_updated(state, action))
        case a.MemberRemoved(chat_id=chat_id, person=person, by=by):
            history = state.history(chat_id).with_member(person, joined=False)
            histories = {**state.histories, chat_id: history}
            where = state.chat(chat_id)
            notice = f"{by.username} removed {person.username} from #{where.name if where else '?'}"
            return Update(replace(state, histories=histories, notice=notice))
        case a.PersonUpdated(person=person):
            return Update(_person_updated(state, person))
    return None


def _chat_updated(state: AppState, action: a.ChatUpdated) -> AppState:
    chat = state.chat(action.chat_id)
    if chat is None:
        return state
    updated = replace(chat, name=action.name, topic=action.topic, owner_id=action.owner_id)
    if updated == chat:
        return state  # our own answer, then the frame: one notice
    chats = tuple(updated if c.id == chat.id else c for c in state.chats)
    what = f"#{chat.name} is now #{action.name}" if action.name != chat.name else ""
    if action.topic != chat.topic:
        what = what or f"#{action.name}"
        what += f": topic {action.topic!r}" if action.topic else ": topic cleared"
    return replace(state, chats=chats, notice=what or state.notice)


def _person_updated(state: AppState, person: Person) -> AppState:
    """The new name wherever that person is shown: members, lines, me."""

    def same(p: Person) -> Person:
        return person if p.id == person.id else p

    def history(h: History) -> History:
        if not any(p.id == person.id for p in h.members) and not any(
            line.sender.id == person.id for line in h.lines
        ):
            return h
        lines = tuple(_line(line, person) for line in h.lines)
        return replace(h, members=tuple(same(p) for p in h.members), lines=lines)

    histories = {chat_id: history(h) for chat_id, h in state.histories.items()}
    me = same(state.me) if state.me is not None else None
    return replace(state, histories=histories, me=me)


def _line(line: Line, person: Person) -> Line:
    return replace(line, sender=person) if line.sender.id == person.id else line


def _member(state: AppState, chat_id: int, user_id: int) -> Person | None:
    return next((p for p in state.history(chat_id).members if p.id == user_id), None)


def _say(state: AppState, text: str) -> Update:
    return Update(replace(state, notice=text))
