"""Sidebar, panels (invites, search, help) and the status bar: each a
function of the state, read at render time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType
from prompt_toolkit.utils import get_cwidth

from crab.tui.keys import COMMANDS, help_lines
from crab.tui.state import AppState, Line, Link, Person, PresenceState
from crab.tui.views.nicks import labelled, nick_style
from crab.tui.views.text import clip, one_line, wrap

if TYPE_CHECKING:
    from prompt_toolkit.key_binding.key_bindings import NotImplementedOrNone

MARKS = {PresenceState.ONLINE: "●", PresenceState.AWAY: "◐", PresenceState.OFFLINE: "○"}


def presence_mark(state: AppState, person: Person) -> str:
    """● online, ◐ away, ○ offline; nothing while not known yet."""
    found = state.presence.get(person.id)
    return MARKS[found.state] if found is not None else ""


def last_seen(state: AppState, person: Person) -> str:
    """ "last seen 14:02" (today) or "last seen 3 Dec" for someone offline."""
    found = state.presence.get(person.id)
    if found is None or found.state is not PresenceState.OFFLINE or found.last_seen is None:
        return ""
    when = found.last_seen.astimezone()
    today = datetime.now(when.tzinfo).date()
    shown = when.strftime("%H:%M") if when.date() == today else f"{when.day} {when:%b}"
    return f"last seen {shown}"


def sidebar(
    state: AppState, width: int = 26, open_chat: Callable[[int], None] | None = None
) -> StyleAndTextTuples:
    """The chat list, `width` columns: chats 1..9 numbered (Alt+N opens
    one); a long name is clipped so its counts always show whole. With
    `open_chat`, a click on a chat's row opens it."""
    out: StyleAndTextTuples = [("class:title", " Chats\n")]
    if not state.chats:
        out.append(("class:hint", " (none yet)\n"))
    for n, chat in enumerate(state.chats, 1):
        active = chat.id == state.active_chat
        mark = "#" if chat.is_room else "@"
        peer = state.peers.get(chat.id)
        if peer is not None:
            mark = presence_mark(state, peer) or mark
        style = "class:active" if active else ("class:unread" if chat.unread else "")
        muted = chat.id in state.muted  # /mute: "~", dimmed
        style = "class:hint" if muted and not active else style
        unread = f" ({chat.unread})" if chat.unread else ""
        mentions = f" @{chat.mentions}" if chat.mentions else ""  # "(12) @2"
        head = f"{n if n <= 9 else ' '}{'~' if muted else ' '}{mark} "
        room = max(1, width - get_cwidth(head) - len(unread) - len(mentions))
        row = f"{head}{clip(chat.name, room)}{unread}"
        if open_chat is not None:
            out.append((style, row, _clicked(open_chat, chat.id)))
        else:
            out.append((style, row))
        if mentions:
            out.append(("class:mention" if not active else style, mentions))
        out.append((style, "\n"))
    if state.invites:
        out.append(("class:unread", f"\n Invites: {len(state.invites)} (F2)\n"))
    return out


def _clicked(
    open_chat: Callable[[int], None], chat_id: int
) -> Callable[[MouseEvent], NotImplementedOrNone]:
    def handler(event: MouseEvent) -> NotImplementedOrNone:
        if event.event_type is not MouseEventType.MOUSE_UP:
            return NotImplemented
        open_chat(chat_id)
        return None

    return handler


def header(state: AppState) -> StyleAndTextTuples:
    chat = state.chat(state.active_chat)
    if chat is None:
        return [("class:title", " crab")]
    members = state.history(chat.id).members
    kind = "room" if chat.is_room else "personal conversation"
    count = f"{len(members)} member{'s' if len(members) != 1 else ''}"
    out: StyleAndTextTuples = [
        ("class:title", f" {'#' if chat.is_room else '@'}{one_line(chat.name)} "),
    ]
    if chat.topic:
        out.append(("class:topic", f" {one_line(chat.topic)} |"))
        return [*out, ("class:hint", f" {count} (/names)")]
    out.append(("class:hint", f" {kind}; {count}: "))
    # Display names beside usernames when the pane has room for them all.
    room = state.pane[0] - sum(get_cwidth(f[1]) for f in out)
    label = labelled if get_cwidth(", ".join(labelled(p) for p in members[:8])) <= room else None
    me = state.me.id if state.me else -1
    for n, person in enumerate(members[:8]):
        out.append(("class:hint", ", " if n else ""))
        out.append(
            (nick_style(person.id, me), label(person) if label else one_line(person.username))
        )
    return out


def names_panel(state: AppState) -> StyleAndTextTuples:
    """/names: the open chat's members, the owner marked with *."""
    chat = state.chat(state.active_chat)
    out: StyleAndTextTuples = [("class:title", " Members  "), ("class:hint", "Esc back\n\n")]
    if chat is None:
        return [*out, ("class:hint", " No chat open.\n")]
    if chat.topic:
        out.append(("class:hint", f" Topic: {one_line(chat.topic)}\n\n"))
    members = sorted(state.history(chat.id).members, key=lambda p: p.username)
    me = state.me.id if state.me else -1
    for person in members:
        owner = "*" if chat.is_room and person.id == chat.owner_id else " "
        mark = presence_mark(state, person)
        seen = last_seen(state, person)
        seen = f"  ({seen})" if seen else ""
        out.append(("", f" {owner}{mark} "))
        out.append((nick_style(person.id, me), labelled(person)))  # "alice (Alice Liddell)"
        out.append(("class:hint", f"{seen}\n"))
    out.append(("class:hint", "\n ● online  ◐ away  ○ offline"))
    if chat.is_room:
        out.append(("class:hint", "  * the room's owner"))
    out.append(("", "\n"))
    return out


def invites_panel(state: AppState) -> StyleAndTextTuples:
    out: StyleAndTextTuples = [
        ("class:title", " Pending invites  "),
        ("class:hint", "Ctrl+A accept, Ctrl+R reject, Esc back\n\n"),
    ]
    if not state.invites:
        out.append(("class:hint", " No invites waiting for you.\n"))
    for n, invite in enumerate(state.invites):
        what = (
            f"room #{one_line(invite.room_name)}" if invite.room_id else "a personal conversation"
        )
        style = "class:active" if n == state.invite_selected else ""
        out.append(
            (style, f" {n + 1}. {one_line(invite.inviter.username)} invites you to {what}\n")
        )
    if state.sent_invites:
        out.append(("class:hint", "\n Sent, waiting for an answer:\n"))
        for invite in state.sent_invites:
            what = f"#{one_line(invite.room_name)}" if invite.room_id else "a conversation"
            out.append(("class:hint", f"    {one_line(invite.invitee.username)} to {what}\n"))
    return out


def search_panel(state: AppState) -> StyleAndTextTuples:
    search = state.search
    out: StyleAndTextTuples = [
        ("class:title", " Find people  "),
        (
            "class:hint",
            "type on the line below; Enter or Ctrl+D: personal "
            "conversation, Ctrl+O: invite to the open room, Esc back\n\n",
        ),
    ]
    if search.query and not search.results:
        out.append(("class:hint", f" nobody matches {one_line(search.query)!r} (yet)\n"))
    for n, person in enumerate(search.results):
        style = "class:active" if n == search.selected else ""
        out.append((style, f" {one_line(person.username):<20} {one_line(person.display_name)}\n"))
    return out


def found_panel(state: AppState) -> StyleAndTextTuples:
    found = state.found
    out: StyleAndTextTuples = [
        ("class:title", f" Messages holding {one_line(found.query)!r}  "),
        ("class:hint", "Up/Down select, Enter opens the chat there, Esc back\n\n"),
    ]
    if found.searching:
        out.append(("class:hint", " searching...\n"))
    elif not found.hits:
        out.append(("class:hint", " no message in your chats holds these words\n"))
    for n, hit in enumerate(found.hits):
        chosen = n == found.selected
        style = "class:active" if chosen else ""
        when = hit.line.sent_at.astimezone().strftime("%d %b %H:%M")
        head = f" {one_line(hit.chat_name)[:16]:<16} {one_line(hit.line.sender.username)[:12]:<12} {when}  "
        out.append((style, head))
        out.extend(marked_text(hit.line.text, hit.marks, style))
        out.append((style, "\n"))
    return out


def marked_text(
    text: str, marks: tuple[tuple[int, int], ...], style: str = ""
) -> StyleAndTextTuples:
    """The text on one line, the marked spans drawn as matches."""
    out: StyleAndTextTuples = []
    at = 0
    for start, end in sorted(marks):
        if start < at or end > len(text):
            continue  # overlapping or out of range: ignored, never drawn wrong
        out.append((style, one_line(text[at:start])))
        out.append((f"{style} class:match".strip(), one_line(text[start:end])))
        at = end
    out.append((style, one_line(text[at:])))
    return out


def help_rows(width: int) -> list[str]:
    """The help, wrapped to the pane's columns."""
    return [part for row in help_lines() for part in wrap(row, max(10, width - 1))]


def help_panel(state: AppState, width: int, height: int) -> list[StyleAndTextTuples]:
    """The help from `state.help_scroll` on, under a row saying how to
    scroll and close it; the bottom row says when more is below."""
    head: StyleAndTextTuples = [
        ("class:title", " Help  "),
        ("class:hint", clip("Up/Down/PgUp/PgDn scroll, F1 or Esc closes", max(1, width - 7))),
    ]
    body = help_rows(width)
    room = max(0, height - 1)
    top = max(0, min(state.help_scroll, len(body) - room))
    shown: list[StyleAndTextTuples] = [[("", row)] for row in body[top : top + room]]
    if top + room < len(body) and shown:
        shown[-1] = [
            ("class:hint", clip(f"↓ {len(body) - top - room + 1} more rows: Down or PgDn", width))
        ]
    return [head, *shown]


def status(state: AppState) -> StyleAndTextTuples:
    me = one_line(state.me.username) if state.me else "not signed in"
    link = state.connection
    if link.link is Link.RECONNECTING and link.retry_in > 0:
        text, style = f"reconnecting in {link.retry_in:.0f}s", "class:warn"
        if link.detail:
            text += f" ({one_line(link.detail)[:40]})"
    elif link.link is Link.CONNECTED:
        text, style = "connected", "class:ok"
    else:
        text, style = link.link.value, "class:warn"
    out: StyleAndTextTuples = [("class:status", f" {me} @ {state.server} | "), (style, text)]
    if state.outbox:
        out.append(("class:status", f" | {len(state.outbox)} unsent"))
    if state.notice:
        out.append(("class:status", f" | {one_line(state.notice)}"))
    elif state.selected:
        out.append(("class:status", f" | {one_line(selection_hint(state))}"))
    return out


def usernames(state: AppState) -> dict[int, str]:
    """Usernames of the open chat's people: members, and senders loaded."""
    history = state.history(state.active_chat)
    known = {x.sender.id: x.sender.username for x in history.lines}
    known.update((p.id, p.username) for p in history.members)
    if state.me:
        known[state.me.id] = state.me.username
    return known


def who_reacted(state: AppState, line: Line) -> str:
    """ "👍 alice, bob  🎉 carol": who reacted to the message, per emoji."""
    known = usernames(state)
    return "  ".join(
        f"{r.emoji} " + ", ".join(known.get(u, f"#{u}") for u in r.user_ids)
        for r in line.reactions
        if r.user_ids
    )


def selection_hint(state: AppState) -> str:
    line = state.history(state.active_chat).find(state.selected)
    if line is None:
        return ""
    said = []
    if line.edited_at is not None and not line.deleted:
        said.append(f"edited {line.edited_at.astimezone().strftime('%d %b %H:%M')}")
    reactions = who_reacted(state, line)
    if reactions:
        said.append(reactions)
    if not said:
        return "r reply  e edit  d delete  + react  y copy  Enter quoted  Esc back"
    return "  ".join(said)


COUNT_FROM = 0.8  # the counter shows from this share of the limit on


def counter(state: AppState, text: str) -> StyleAndTextTuples:
    """ "3950/4000" beside the message line once it nears the server's limit."""
    limit = state.max_message_chars
    if not limit or len(text) < limit * COUNT_FROM or state.asking is not None:
        return []
    style = "class:error" if len(text) > limit else "class:hint"
    return [(style, f" {len(text)}/{limit}")]


def composing(state: AppState) -> StyleAndTextTuples:
    """The line above the input: what Enter will do besides sending."""
    history = state.history(state.active_chat)
    if state.editing:
        return [("class:quote", " editing your message  (Enter saves, Esc cancels)")]
    line = history.find(state.replying)
    if line is None:
        return []
    text = "deleted message" if line.deleted else f"{line.sender.username}: {line.text}"
    return [("class:quote", " ↳ replying to " + clip(text, 60, True) + "  (Esc cancels)")]


def usage(state: AppState, text: str) -> StyleAndTextTuples:
    """The row above the line while a known slash command is typed (its
    name and a space): how to use it and what it does. Never while the line
    asks for a password: it would tell how the password begins."""
    if not text.startswith("/") or "\n" in text or state.asking is not None:
        return []
    name, space, _ = text[1:].partition(" ")
    command = next((c for c in COMMANDS if c.name == name), None)
    if command is None or not space:
        return []
    shown = f"/{command.name} {command.args}".strip()
    return [("class:title", f" {shown}"), ("class:hint", f"  {command.help}")]
