"""The message line: Enter sends a message or runs a slash command."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import COMMANDS, Command
from crab.tui.reducers import Update, calls, changes, found, room_admin
from crab.tui.reducers.live import open_chat
from crab.tui.state import AppState, Bell, Focus, Line, Link, Quote, Search

KNOWN = {c.name for c in COMMANDS}


def reduce(state: AppState, action: a.Action) -> Update | None:
    if state.asking is not None:  # /password: the line holds a password, not a message
        match action:
            case a.Submit(text=text):
                return room_admin.answer(state, text)
            case a.Key(command=Command.BACK):
                return room_admin.cancel(state)
            case a.Key(command=Command.EDIT_LAST):
                return Update(state)  # never a message's text on a password line
    match action:
        case a.Submit(text=text):
            text = text.rstrip("\n")  # a paste's last newline is not part of the message
            stripped = text.strip()
            if not stripped:
                return Update(state)
            if stripped.lower().startswith("/me ") and stripped[4:].strip():
                # An action is a message whose text starts "/me " (sent
                # literally; views draw "* alice waves").
                text = "/me " + stripped[4:].strip()
                return (
                    changes.save_edit(state, text) if state.editing else send(state, action, text)
                )
            if stripped.startswith("/") and not stripped.startswith("//"):
                return command(state, stripped[1:])
            # "//text" sends "/text" literally.
            text = text[1:] if stripped.startswith("//") else text
            if state.editing:
                return changes.save_edit(state, text)
            return send(state, action, text)
        case a.Key(command=Command.EDIT_LAST):
            waiting = changes.still_sending(state)
            return waiting or changes.start_edit(state, changes.my_last(state))
    return None


def send(state: AppState, submit: a.Submit, text: str) -> Update:
    chat = state.chat(state.active_chat)
    if chat is None or state.me is None:
        return Update(replace(state, notice="no chat open: /create a room or /dm someone"))
    limit = state.max_message_chars
    if limit and len(text) > limit:
        # Kept on the line (Enter emptied it) to be shortened.
        notice = f"not sent: {len(text)} characters; the limit is {limit}"
        return Update(replace(state, fill=text, fill_serial=state.fill_serial + 1, notice=notice))
    quoted = state.history(chat.id).find(state.replying)
    quote = Quote(quoted.sender.username, quoted.text) if quoted else None
    line = Line(
        chat_id=chat.id,
        id=0,
        sender=state.me,
        text=text,
        sent_at=submit.sent_at,
        client_message_id=submit.client_message_id,
        pending=True,
        reply_to_id=quoted.id if quoted else 0,
        quote=quote,
    )
    # Kept in the outbox until acknowledged; sent again (same id) on reconnect.
    # Sending means the last notice has been read: clear it.
    state = replace(state, outbox=(*state.outbox, line), scroll=0, notice="", replying=0)
    return Update(state, (fx.Send(line),))


_BELL_SAYS = {
    Bell.ALL: "every message in another chat",
    Bell.MENTIONS: "mentions of you and personal conversations",
    Bell.OFF: "never",
}


def _bell(state: AppState, arg: str) -> Update:
    """/bell shows the setting; /bell all|mentions|off changes and saves it."""
    if not arg:
        return Update(
            replace(state, notice=f"bell: {_BELL_SAYS[state.bell]} (/bell all|mentions|off)")
        )
    try:
        bell = Bell(arg)
    except ValueError:
        return Update(replace(state, notice="usage: /bell all|mentions|off"))
    notice = f"bell: {_BELL_SAYS[bell]}"
    return Update(replace(state, bell=bell, notice=notice), (fx.SaveBell(bell.value),))


def _close(state: AppState) -> Update:
    """/close: no chat open (the chat stays in the list; Ctrl+N opens one)."""
    if state.active_chat is None:
        return Update(replace(state, notice="no chat open"))
    closed = replace(
        state,
        active_chat=None,
        closed=True,
        scroll=0,
        scroll_cut=(0, 0),
        new_below=0,
        selected=0,
        editing=0,
        replying=0,
        focus=Focus.INPUT,
    )
    return Update(closed)


def _mute(state: AppState, mute: bool) -> Update:
    """/mute, /unmute: the open chat's bell and notifications, kept in settings.json."""
    chat = state.chat(state.active_chat)
    if chat is None:
        return Update(replace(state, notice="no chat open"))
    muted = state.muted | {chat.id} if mute else state.muted - {chat.id}
    said = "muted: no bell nor notification" if mute else "unmuted"
    notice = f"{'#' if chat.is_room else ''}{chat.name} {said}"
    effects = (fx.SaveMuted(tuple(sorted(muted))),) if muted != state.muted else ()
    return Update(replace(state, muted=frozenset(muted), notice=notice), effects)


def _index(arg: str, count: int) -> int | None:
    if not arg:
        return 0 if count else None
    if arg.isdigit() and 1 <= int(arg) <= count:
        return int(arg) - 1
    return None


def command(state: AppState, line: str) -> Update:
    name, _, arg = line.partition(" ")
    name, arg = name.lower(), arg.strip()
    if name not in KNOWN:
        return Update(replace(state, notice=f"unknown command /{name}; /help lists them"))
    if name in room_admin.ADMIN:
        return room_admin.command(state, name, arg)
    if name in calls.COMMANDS:
        return calls.command(state, name)
    chat = state.chat(state.active_chat)
    match name:
        case "create":
            if not arg:
                return Update(replace(state, notice="usage: /create NAME"))
            return Update(state, (fx.CreateRoom(arg),))
        case "invite":
            if not arg:
                return Update(replace(state, notice="usage: /invite USER"))
            if chat is None or not chat.is_room:
                return Update(replace(state, notice="open a room first, then /invite USER"))
            return Update(state, (fx.InviteToRoom(chat.id, arg.lstrip("@")),))
        case "dm" | "query":
            if not arg:
                return Update(replace(state, notice=f"usage: /{name} USER"))
            username = arg.lstrip("@").lower()
            talk = next((c for c in state.chats if not c.is_room and c.name == username), None)
            if talk is not None:  # we already talk: open it
                return open_chat(state, talk.id)
            return Update(state, (fx.InviteToDirect(username),))
        case "invites":
            return Update(replace(state, focus=Focus.INVITES))
        case "accept" | "reject":
            index = _index(arg, len(state.invites))
            if index is None:
                text = (
                    "no pending invites"
                    if not state.invites
                    else f"usage: /{name} [1-{len(state.invites)}]"
                )
                return Update(replace(state, notice=text))
            invite = state.invites[index]
            return Update(state, (fx.AnswerInvite(invite.id, name == "accept"),))
        case "leave":
            if chat is None:
                return Update(replace(state, notice="no chat open"))
            return Update(state, (fx.LeaveChat(chat.id),))
        case "close":
            return _close(state)
        case "me":
            return Update(replace(state, notice="usage: /me ACTION"))
        case "mute" | "unmute":
            return _mute(state, name == "mute")
        case "search":
            if not arg:
                return Update(replace(state, notice="usage: /search TEXT"))
            return found.start(state, arg)
        case "people":
            request = state.search.request + 1
            search = Search(query=arg, request=request)
            effects = (fx.SearchUsers(request, arg),) if arg else ()
            # The query goes on the search line, to be typed on from.
            state = replace(state, fill=arg, fill_serial=state.fill_serial + 1)
            return Update(replace(state, focus=Focus.SEARCH, search=search), effects)
        case "edit":
            return changes.edit(state, arg)
        case "delete":
            waiting = changes.still_sending(state)
            return waiting or changes.delete(state, changes.my_last(state))
        case "react":
            return changes.react_command(state, arg)
        case "bell":
            return _bell(state, arg.lower())
        case "help":
            return Update(replace(state, focus=Focus.HELP))
        case "reconnect":
            if state.connection.link is Link.CONNECTED:
                return Update(replace(state, notice="already connected"))
            return Update(replace(state, notice="reconnecting now"), (fx.Reconnect(),))
        case "logout":
            return Update(state, (fx.SignOut(),))
        case "quit":
            return Update(replace(state, quitting=True), (fx.Quit(),))
    return Update(state)
