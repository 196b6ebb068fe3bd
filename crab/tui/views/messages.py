"""The open chat's messages. Renders only what fits on screen, from the
bottom of the view up, so a chat with 10,000 loaded messages costs what 40
do, at any scroll position."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import GetLinePrefixCallable, UIContent, UIControl

from crab.tui.state import AppState, History, Line
from crab.tui.views.text import clip, one_line, wrap

NAME_WIDTH = 12


BODY = 6 + NAME_WIDTH + 1  # the column where the text starts


def quote_text(line: Line, history: History) -> str:
    """The reply's one-line quote: from the loaded original when there is
    one (it may have changed since the reply), else as the server sent it."""
    original = history.find(line.reply_to_id)
    if original is not None:
        if original.deleted:
            return "deleted message"
        return f"{original.sender.username}: {original.text}"
    if line.quote is not None:
        if line.quote.deleted:
            return "deleted message"
        return f"{line.quote.sender}: {line.quote.text_start}"
    return f"message {line.reply_to_id}"


def reactions_text(line: Line) -> str:
    return "  ".join(f"{r.emoji} {len(r.user_ids)}" for r in line.reactions if r.user_ids)


def seen_by(state: AppState, history: History) -> dict[int, list[str]]:
    """Message id -> who has read up to it (and no further): each reader
    under the newest message they read. Not me; not under their own line."""
    me = state.me.id if state.me else -1
    names = {p.id: p.username for p in history.members}
    out: dict[int, list[str]] = {}
    for user_id, last_read in history.read.items():
        line = history.find(last_read)
        if user_id == me or line is None or line.sender.id == user_id:
            continue
        out.setdefault(last_read, []).append(names.get(user_id, f"user {user_id}"))
    return {k: sorted(v) for k, v in out.items()}


def typing_text(state: AppState, chat_id: int) -> str:
    """ "bob is typing..." / "bob and carol are typing..." / "4 people are typing..."."""
    names = sorted(t.person.username for t in state.typing if t.chat_id == chat_id)
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing..."
    if len(names) <= 3:
        return f"{', '.join(names[:-1])} and {names[-1]} are typing..."
    return f"{len(names)} people are typing..."


def _rows(
    line: Line,
    width: int,
    mine: bool,
    history: History,
    selected: bool = False,
    mentions_me: bool = False,
    seen: list[str] | None = None,
) -> list[StyleAndTextTuples]:
    when = line.sent_at.astimezone().strftime("%H:%M")
    name = one_line(line.sender.username)[:NAME_WIDTH]
    style = "class:mine" if mine else "class:sender"
    text_style = "class:pending" if line.pending else ("class:mention" if mentions_me else "")
    body_width = max(10, width - BODY)
    indent: StyleAndTextTuples = [("", " " * BODY)]
    rows: list[StyleAndTextTuples] = []
    if line.reply_to_id:
        text = clip("↳ " + quote_text(line, history), body_width, emoji_joins=True)
        rows.append([*indent, ("class:quote", text)])
    parts = ["message deleted"] if line.deleted else wrap(line.text, body_width)
    if line.deleted:
        text_style = "class:tombstone"
    for i, part in enumerate(parts):
        if i == 0:
            head: StyleAndTextTuples = [
                ("class:time", f"{when} "),
                (style, f"{name:<{NAME_WIDTH}} "),
            ]
        else:
            head = list(indent)
        rows.append([*head, (text_style, part)])
    if line.edited_at is not None and not line.deleted:
        rows[-1].append(("class:hint", " (edited)"))
    if line.pending:
        rows[-1].append(("class:pending", "  (sending)"))
    reactions = reactions_text(line)
    if reactions and not line.deleted:
        rows.append([*indent, ("class:reactions", clip(reactions, body_width, emoji_joins=True))])
    if selected:
        rows = [[(f"class:selected {f[0]}", f[1]) for f in row] for row in rows]
    if seen:
        text = clip("seen by " + ", ".join(one_line(n) for n in seen), body_width)
        rows.append([*indent, ("class:hint", text)])
    return rows


def _day(moment: datetime) -> str:
    return moment.astimezone().strftime("%A %d %B %Y")


def visible_rows(state: AppState, width: int, height: int) -> list[StyleAndTextTuples]:
    """The rows to show, top to bottom. `state.scroll` messages are hidden
    below the bottom row; the walk goes up from there only until the screen
    is full, so the cost is the screen's, whatever the chat's length."""
    chat_id = state.active_chat
    if chat_id is None:
        return [
            [
                (
                    "class:hint",
                    "No chat open. /create NAME makes a room; /dm USER starts a conversation.",
                )
            ]
        ]
    history = state.history(chat_id)
    me = state.me.id if state.me else -1
    loaded = history.lines
    pending = [x for x in state.outbox if x.chat_id == chat_id]
    total = len(loaded) + len(pending)

    def at(index: int) -> Line:
        return loaded[index] if index < len(loaded) else pending[index - len(loaded)]

    rows: list[StyleAndTextTuples] = []  # bottom-up
    typing = typing_text(state, chat_id)
    if typing and not state.scroll:
        rows.append([("class:hint", " " * BODY + typing)])
    seen = seen_by(state, history)
    index = total - 1 - min(state.scroll, max(0, total - 1))
    while index >= 0 and len(rows) < height:
        line = at(index)
        chosen = bool(state.selected) and line.id == state.selected
        mine = line.sender.id == me
        mentioned = not mine and line.mentions(me)
        drawn = _rows(line, width, mine, history, chosen, mentioned, seen.get(line.id))
        rows.extend(reversed(drawn))
        day = _day(line.sent_at)
        if index == 0 or _day(at(index - 1).sent_at) != day:
            rows.append([("class:day", f"── {day} ──")])
        index -= 1
    if index < 0:
        if history.loading:
            rows.append([("class:hint", "loading older messages...")])
        elif not history.has_more:
            rows.append([("class:hint", "This is the beginning of the chat.")])
    shown = rows[:height]
    shown.reverse()
    # Newest at the bottom, like every chat: pad a short chat from the top.
    return [[] for _ in range(height - len(shown))] + shown


class MessagesControl(UIControl):
    def __init__(self, state: Callable[[], AppState]) -> None:
        self._state = state

    def is_focusable(self) -> bool:
        return False

    def create_content(self, width: int, height: int | None) -> UIContent:
        rows = visible_rows(self._state(), width, height or 24)
        return UIContent(get_line=lambda i: rows[i], line_count=len(rows), show_cursor=False)

    def get_line_prefix(self) -> GetLinePrefixCallable | None:  # pragma: no cover - unused
        return None
