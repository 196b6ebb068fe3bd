"""Server data: loaded lists and pages, and the frames of the live stream.
Handled whatever has focus."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.reducers import Update, presence
from crab.tui.state import AppState, Bell, ChatItem, History, Line, Notify, Order, Screen


def reduce(state: AppState, action: a.Action) -> Update | None:
    match action:
        case a.ChatsLoading():
            return Update(replace(state, chats_loading=state.chats_loading + 1))
        case a.ChatsLoadFailed():
            return Update(_load_done(state))
        case a.ChatsLoaded():
            return _chats_loaded(state, action)
        case a.HistoryLoaded():
            return Update(_history_loaded(state, action))
        case a.MembersLoaded(chat_id=chat_id, members=members):
            history = state.history(chat_id).with_members(members)
            return Update(replace(state, histories={**state.histories, chat_id: history}))
        case a.MessageArrived(line=line):
            return _arrived(state, line)
        case a.MessageChanged(line=line, from_stream=from_stream):
            return Update(changed(state, line, from_stream))
        case a.Acked(client_message_id=cid, line=line):
            state = replace(
                state, outbox=tuple(x for x in state.outbox if x.client_message_id != cid)
            )
            return _arrived(state, line, acked=True)
        case a.SendRejected(client_message_id=cid, code=code, text=text):
            return Update(_rejected(state, cid, code, text))
        case a.InviteArrived(invite=invite):
            if any(i.id == invite.id for i in state.invites):
                return Update(state)
            who = invite.inviter.username
            what = f"room {invite.room_name}" if invite.room_id else "a personal conversation"
            notice = f"{who} invites you to {what} (F2 or /invites)"
            return Update(
                replace(state, invites=(*state.invites, invite), notice=notice),
                ring(state, "crab", notice),
            )
        case a.InviteAnswered():
            return _peers(_switched(state, _answered(state, action)))
        case a.ChatJoined(chat=chat):
            return _peers(_switched(state, _joined(state, chat)))
        case a.ChatLeft(chat_id=chat_id):
            gone = state.chat(chat_id)
            if gone is not None:  # left, or removed by the room's owner
                state = replace(state, notice=f"you are no longer in {gone.name}")
            return _switched(state, _left(state, chat_id))
        case a.MemberChanged(chat_id=chat_id, person=person, joined=joined):
            history = state.history(chat_id).with_member(person, joined)
            verb = "joined" if joined else "left"
            where = state.chat(chat_id)
            who = "you" if state.me and person.id == state.me.id else person.username
            notice = f"{who} {verb} {where.name if where else 'a chat'}"
            histories = {**state.histories, chat_id: history}
            return Update(replace(state, histories=histories, notice=notice))
        case a.ConnectionChanged(connection=connection):
            return Update(replace(state, connection=connection))
        case a.LimitsKnown(max_message_chars=limit):
            return Update(replace(state, max_message_chars=limit))
        case a.Failed(text=text) | a.Notice(text=text):
            return Update(replace(state, notice=text))
    return None


def _rejected(state: AppState, cid: str, code: str, text: str) -> AppState:
    """A send the server refused leaves the outbox. When the text itself
    was at fault, it goes back on the message line to be fixed, not lost."""
    line = next((x for x in state.outbox if x.client_message_id == cid), None)
    outbox = tuple(x for x in state.outbox if x.client_message_id != cid)
    state = replace(state, outbox=outbox, notice=f"not sent: {text}")
    if line is not None and code == "INVALID_ARGUMENT":
        state = replace(
            state,
            notice=f"not sent: {text} (the text is back on the line)",
            fill=line.text,
            fill_serial=state.fill_serial + 1,
        )
    return state


def _switched(before: AppState, after: AppState) -> Update:
    """Opens the active chat properly when a join or leave changed it."""
    if after.active_chat is not None and after.active_chat != before.active_chat:
        return open_chat(after, after.active_chat)
    return Update(after)


def _peers(update: Update) -> Update:
    """Asks who the other person of a new personal conversation is."""
    state = update.state
    unknown = tuple(c.id for c in state.chats if not c.is_room and c.id not in state.peers)
    if not unknown:
        return update
    return Update(state, (*update.effects, fx.LoadPeers(unknown)))


def _bell(state: AppState, line: Line, chat: ChatItem | None) -> tuple[fx.Effect, ...]:
    """For a message in another chat, not mine (an invite rings by _ring).
    By default (Bell.MENTIONS) only what is addressed to me rings: an invite, a
    message that mentions me or @room, any message of a personal
    conversation; a burst in a busy room stays quiet. A muted chat (/mute)
    never rings."""
    if line is None or chat is None or chat.id in state.muted or state.bell is Bell.OFF:
        return ()
    if state.bell is Bell.ALL or not chat.is_room or _mentions_me(state, line):
        title = f"#{chat.name}" if chat.is_room else chat.name
        text = line.text
        if text.startswith("/me "):
            return ring(state, title, f"* {line.sender.username} {text[4:]}")
        return ring(state, title, f"{line.sender.username}: {text}")
    return ()


def ring(state: AppState, title: str, body: str) -> tuple[fx.Effect, ...]:
    """The bell, and a desktop notification if config.toml asks for one."""
    if state.bell is Bell.OFF:
        return ()
    if state.notify is Notify.OFF:
        return (fx.Bell(),)
    return (fx.Bell(), fx.Notify(title, body))


def _mentions_me(state: AppState, line: Line) -> bool:
    return state.me is not None and line.mentions(state.me.id)


def _chats_loaded(state: AppState, action: a.ChatsLoaded) -> Update:
    active = state.active_chat
    if state.chat(active) is None and action.chats and not state.closed:
        active = ordered(state, action.chats)[0].id
    # The change cursor of a chat already known stays the client's own: what
    # it has applied. The server's newer number may be ahead of frames still
    # on their way, and resuming from it would skip them.
    known = {c.id: c.last_change_seq for c in state.chats}
    chats = tuple(
        replace(c, last_change_seq=known[c.id]) if c.id in known else c for c in action.chats
    )
    for chat_id, joined in state.chat_changes:  # frames the answer may not know yet
        if joined is None:
            chats = tuple(c for c in chats if c.id != chat_id)
        elif all(c.id != chat_id for c in chats):
            chats = (joined, *chats)
    chats = ordered(state, chats)
    if active is not None and all(c.id != active for c in chats):
        active = chats[0].id if chats else None
    state = _load_done(state)
    state = replace(
        state,
        chats=chats,
        invites=action.received,
        sent_invites=action.sent,
        invite_selected=min(state.invite_selected, max(0, len(action.received) - 1)),
    )
    # Personal conversations: who the other person is, for presence marks.
    return _peers(open_chat(state, active) if active is not None else Update(state))


def _load_done(state: AppState) -> AppState:
    loading = max(0, state.chats_loading - 1)
    changes = state.chat_changes if loading else ()
    return replace(state, chats_loading=loading, chat_changes=changes)


def _noted(state: AppState, chat_id: int, chat: ChatItem | None) -> AppState:
    if not state.chats_loading:
        return state
    return replace(state, chat_changes=(*state.chat_changes, (chat_id, chat)))


def open_chat(state: AppState, chat_id: int) -> Update:
    """Show a chat: its history loads on first view, and it counts as read."""
    chat = state.chat(chat_id)
    if chat is None:
        return Update(state)
    effects: list[fx.Effect] = []
    history = state.histories.get(chat_id)
    if history is None:
        history = History(loading=True)
        effects += [fx.LoadHistory(chat_id, 0), fx.LoadMembers(chat_id)]
    if chat.unread and chat.last_message_id:
        effects.append(fx.MarkRead(chat_id, chat.last_message_id))
    chats = tuple(replace(c, unread=0, mentions=0) if c.id == chat_id else c for c in state.chats)
    state = replace(
        state,
        active_chat=chat_id,
        closed=False,
        chats=chats,
        scroll=0,
        histories={**state.histories, chat_id: history},
        read_marker=_marker(state, chat),
    )
    return Update(state, tuple(effects))


def _marker(state: AppState, chat: ChatItem) -> tuple[int, int]:
    """Where "new messages" goes: above the first unread message (ids are
    gap-free in a chat). Opened again with nothing new, the open chat keeps
    its marker and another chat has none."""
    if chat.unread and chat.last_message_id:
        return chat.id, max(1, chat.last_message_id - chat.unread + 1)
    return state.read_marker if chat.id == state.active_chat else (0, 0)


def _history_loaded(state: AppState, action: a.HistoryLoaded) -> AppState:
    history = state.history(action.chat_id)
    oldest = history.oldest_id
    # Keep what is loaded; add only older lines (a page never overlaps newer ones).
    older = tuple(x for x in action.lines if not oldest or x.id < oldest)
    newer = tuple(x for x in action.lines if oldest and x.id > history.newest_id)
    history = replace(
        history,
        lines=older + history.lines + newer,
        has_more=action.has_more,
        loading=False,
    )
    return replace(state, histories={**state.histories, action.chat_id: history})


def _arrived(state: AppState, line: Line, acked: bool = False) -> Update:
    chat = state.chat(line.chat_id)
    if chat is None:
        return Update(state)
    state = presence.arrived(state, line)
    effects: tuple[fx.Effect, ...] = ()
    history = state.histories.get(line.chat_id)
    if history is not None:
        if line.id <= history.newest_id:
            # Already shown (replay, echo of an ack): only a newer copy counts.
            return Update(_held(state, line))
        history = replace(history, lines=(*history.lines, line))
        state = replace(state, histories={**state.histories, line.chat_id: history})
        if state.scroll and line.chat_id == state.active_chat and not acked:
            # Scrolled back: the view stays on the messages being read, and
            # the marker row counts what came.
            state = replace(state, scroll=state.scroll + 1, new_below=state.new_below + 1)
    elif line.id <= chat.last_message_id:
        return Update(state)
    mine = state.me is not None and line.sender.id == state.me.id
    unread, mentions = chat.unread, chat.mentions
    if line.chat_id == state.active_chat and state.screen is Screen.CHATS:
        if not mine:
            effects = (fx.MarkRead(line.chat_id, line.id),)
    elif not mine:
        unread += 1
        mentions += _mentions_me(state, line)
        effects = _bell(state, line, chat)
    updated = replace(
        chat,
        unread=unread,
        mentions=mentions,
        last_message_id=line.id,
        last_activity=line.sent_at,
    )
    if state.order is Order.ACTIVITY:
        chats = (updated, *(c for c in state.chats if c.id != chat.id))  # most recent first
    else:
        chats = tuple(updated if c.id == chat.id else c for c in state.chats)
    return Update(replace(state, chats=chats), effects)


def ordered(state: AppState, chats: tuple[ChatItem, ...]) -> tuple[ChatItem, ...]:
    """The chat list in the chosen order. Fixed: by chat id, the order the
    chats began in, so numbers (Alt+N) and places stay put. Activity: the
    newest message first (MyChats answers so; a new chat goes on top)."""
    if state.order is Order.FIXED:
        return tuple(sorted(chats, key=lambda c: c.id))
    return chats


def changed(state: AppState, line: Line, from_stream: bool) -> AppState:
    """A message as it is after a change. Frames of the live stream move the
    chat's change cursor (resume asks for what came after it); the answer
    to my own change does not: changes before it may still be on their way."""
    chat = state.chat(line.chat_id)
    if chat is None:
        return state
    if from_stream and line.change_seq > chat.last_change_seq:
        updated = replace(chat, last_change_seq=line.change_seq)
        state = replace(state, chats=tuple(updated if c.id == chat.id else c for c in state.chats))
    # A message not loaded is left alone: it loads as it is now.
    return _held(state, line)


def _held(state: AppState, line: Line) -> AppState:
    """Keeps, of the held copy and `line`, the one with the higher change_seq."""
    history = state.histories.get(line.chat_id)
    at = history.index(line.id) if history is not None else None
    if history is None or at is None or line.change_seq <= history.lines[at].change_seq:
        return state
    lines = (*history.lines[:at], line, *history.lines[at + 1 :])
    return replace(
        state, histories={**state.histories, line.chat_id: replace(history, lines=lines)}
    )


def _answered(state: AppState, action: a.InviteAnswered) -> AppState:
    invites = tuple(i for i in state.invites if i.id != action.invite_id)
    sent = tuple(i for i in state.sent_invites if i.id != action.invite_id)
    notice = state.notice
    if not action.by_me:
        verb = "accepted" if action.accepted else "declined"
        notice = f"{action.who} {verb} your invite"
    state = replace(state, invites=invites, sent_invites=sent, notice=notice)
    if action.chat is not None and state.chat(action.chat.id) is None:
        state = _joined(state, action.chat)
    return replace(state, invite_selected=min(state.invite_selected, max(0, len(invites) - 1)))


def _joined(state: AppState, chat: ChatItem) -> AppState:
    state = _noted(state, chat.id, chat)
    if state.chat(chat.id) is not None:
        return state
    state = replace(state, chats=ordered(state, (chat, *state.chats)))
    if state.active_chat is None:
        state = replace(state, active_chat=chat.id)
    return state


def _left(state: AppState, chat_id: int) -> AppState:
    state = _noted(state, chat_id, None)
    chats = tuple(c for c in state.chats if c.id != chat_id)
    histories = {k: v for k, v in state.histories.items() if k != chat_id}
    active = state.active_chat
    if active == chat_id:
        active = chats[0].id if chats else None
    return dataclasses.replace(
        state, chats=chats, histories=histories, active_chat=active, scroll=0
    )
