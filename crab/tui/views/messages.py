"""The open chat's messages. Renders only what fits on screen, from the
bottom of the view up, so a chat with 10,000 loaded messages costs what 40
do, at any scroll position."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import GetLinePrefixCallable, UIContent, UIControl
from prompt_toolkit.mouse_events import MouseEvent, MouseEventType
from prompt_toolkit.utils import get_cwidth

from crab.tui.keys import Command, key_label, keys_for
from crab.tui.state import AppState, History, Line
from crab.tui.views.links import linked
from crab.tui.views.nicks import nick_style
from crab.tui.views.text import clip, drawn, one_line, wrap

if TYPE_CHECKING:
    from prompt_toolkit.key_binding.key_bindings import NotImplementedOrNone

NAME_WIDTH = 12
BODY = 6 + NAME_WIDTH + 1  # the column where the text starts, on a wide pane
NARROW = 60  # below this many columns the name column shrinks
COMPACT = 40  # below this, the time and name get a row of their own


ME = "/me "  # a message that starts so is an action: drawn "* alice waves"


def gutter(width: int, seconds: bool = False) -> tuple[int, int]:
    """(name width, text column) for a pane `width` columns wide; (0, 1):
    compact, the head on its own row and the text under it, so a narrow
    pane still shows every message. `seconds`: the time is HH:MM:SS."""
    extra = 3 if seconds else 0
    if width >= NARROW:
        return NAME_WIDTH, BODY + extra
    if width >= COMPACT:
        return 8, 6 + extra + 8 + 1
    return 0, 1


def action_text(line: Line) -> str | None:
    """The "* alice waves" of a /me message (None: not one)."""
    if line.deleted or not line.text.startswith(ME):
        return None
    return f"* {line.sender.username} {line.text[len(ME) :]}"


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
    seconds: bool = False,
) -> list[StyleAndTextTuples]:
    when = line.sent_at.astimezone().strftime("%H:%M:%S" if seconds else "%H:%M")
    name_width, body = gutter(width, seconds)
    style = "class:mine" if mine else nick_style(line.sender.id, -1)
    text_style = "class:pending" if line.pending else ("class:mention" if mentions_me else "")
    body_width = max(2, width - body)
    indent: StyleAndTextTuples = [("", " " * body)]
    rows: list[StyleAndTextTuples] = []
    if not name_width:
        name = clip(line.sender.username, max(1, width - 6))
        rows.append([("class:time", f"{when} "), (style, name)])
    if line.reply_to_id:
        text = clip("↳ " + quote_text(line, history), body_width, emoji_joins=True)
        rows.append([*indent, ("class:quote", text)])
    action = action_text(line)
    parts = ["message deleted"] if line.deleted else wrap(action or line.text, body_width)
    texts: list[StyleAndTextTuples]
    if line.deleted:
        text_style = "class:tombstone"
        texts = [[(text_style, part)] for part in parts]
    else:
        texts = linked(parts, drawn(action or line.text), text_style, f"{line.chat_id}-{line.id}")
    for i, shown in enumerate(texts):
        if i == 0 and name_width:
            name = "" if action else clip(line.sender.username, name_width)
            name += " " * (name_width - get_cwidth(name))
            head: StyleAndTextTuples = [
                ("class:time", f"{when} "),
                (style, f"{name} "),
            ]
        else:
            head = list(indent)
        rows.append([*head, *shown])
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


class _Chat:
    """The open chat's messages, loaded then pending, as one sequence, and
    the rows each takes at a width (its day line included)."""

    def __init__(self, state: AppState, width: int) -> None:
        assert state.active_chat is not None
        self.state = state
        self.width = width
        self.history = state.history(state.active_chat)
        self.loaded = self.history.lines
        self.pending = [x for x in state.outbox if x.chat_id == state.active_chat]
        self.total = len(self.loaded) + len(self.pending)
        self.me = state.me.id if state.me else -1
        self.seen = seen_by(state, self.history)

    def at(self, index: int) -> Line:
        n = len(self.loaded)
        return self.loaded[index] if index < n else self.pending[index - n]

    def block(self, index: int) -> list[StyleAndTextTuples]:
        """The message's rows, top to bottom, under its day line if the
        day changes there."""
        line = self.at(index)
        chosen = bool(self.state.selected) and line.id == self.state.selected
        mine = line.sender.id == self.me
        mentioned = not mine and line.mentions(self.me)
        seen = self.seen.get(line.id) if line.id else None
        rows = _rows(
            line, self.width, mine, self.history, chosen, mentioned, seen, self.state.seconds
        )
        if line.id and (line.chat_id, line.id) == self.state.read_marker:
            rows.insert(0, [("class:unread", clip("── new messages ──", self.width))])
        day = _day(line.sent_at)
        if index == 0 or _day(self.at(index - 1).sent_at) != day:
            rows.insert(0, [("class:day", clip(f"── {day} ──", self.width))])
        return rows

    def top(self) -> list[StyleAndTextTuples]:
        """The row above the first loaded message."""
        if self.history.loading:
            return [[("class:hint", clip("loading older messages...", self.width))]]
        if not self.history.has_more:
            return [[("class:hint", clip("This is the beginning of the chat.", self.width))]]
        return []

    def anchor(self, scroll: int) -> int:
        """The index of the bottom message when `scroll` are hidden below."""
        return self.total - 1 - min(scroll, max(0, self.total - 1))

    def cut(self, index: int) -> int:
        """Rows of the bottom message hidden below the pane (state.scroll_cut)."""
        message_id, rows = self.state.scroll_cut
        if index < 0 or not message_id or self.at(index).id != message_id:
            return 0
        return rows


def below_marker(state: AppState, below: int, width: int) -> StyleAndTextTuples:
    """The bottom row while scrolled back: how many wait below, and the key
    that jumps there."""
    end = "/".join(key_label(k) for k in keys_for(Command.SCROLL_END))
    new = min(state.new_below, below)
    if not below:
        text = f"↓ more of this message below ({end}: newest)"
    elif new:
        text = f"↓ {new} new message{'s' if new != 1 else ''} below ({end}: newest)"
    else:
        text = f"↓ {below} newer message{'s' if below != 1 else ''} below ({end}: newest)"
    return [("class:unread", clip(text, width))]


def visible_rows(state: AppState, width: int, height: int) -> list[StyleAndTextTuples]:
    """The rows to show, top to bottom. `state.scroll` messages are hidden
    below the bottom row (a marker row says so); the walk goes up from there
    only until the screen is full, so the cost is the screen's, whatever the
    chat's length. The top of the chat never comes below the top row: when
    it is reached with rows to spare, the messages below fill them."""
    if state.active_chat is None:
        return [
            [
                (
                    "class:hint",
                    "No chat open. /create NAME makes a room; /dm USER starts a conversation.",
                )
            ]
        ]
    chat = _Chat(state, width)
    bottom = chat.anchor(state.scroll)
    below = chat.total - 1 - bottom
    cut = chat.cut(bottom)
    room = height - 1 if below or cut else height
    rows: list[StyleAndTextTuples] = []  # bottom-up
    typing = typing_text(state, state.active_chat)
    if typing and not below and not cut:
        rows.append([("class:hint", clip(" " * gutter(width, state.seconds)[1] + typing, width))])
    index = bottom
    while index >= 0 and len(rows) < room:
        block = chat.block(index)
        rows.extend(reversed(block[: len(block) - cut] if index == bottom else block))
        index -= 1
    if index < 0:
        rows.extend(chat.top())
    if index < 0 and len(rows) < room and not cut:
        # The top is in view with rows to spare: the messages below fill them.
        shown = rows[::-1]
        while below and len(shown) < height - 1:
            shown.extend(chat.block(bottom + 1))
            bottom += 1
            below -= 1
        shown = shown[: height - 1] if below else shown[-height:]
    else:
        shown = rows[:room][::-1]
    if below or cut:
        shown.append(below_marker(state, below, width))
    # Newest at the bottom, like every chat: pad a short chat from the top.
    return [[] for _ in range(height - len(shown))] + shown


def page_up(state: AppState, width: int, height: int) -> tuple[int, tuple[int, int]]:
    """The scroll (and scroll_cut) one screen back, less two rows so the top
    rows stay in view at the bottom; no further than the top of the chat at
    the top row once the whole chat is loaded. Pages move by whole messages;
    one taller than the pane is paged through."""
    if state.active_chat is None:
        return 0, (0, 0)
    chat = _Chat(state, width)
    index = chat.anchor(state.scroll)
    page = max(1, height - 3)
    if index >= 0:
        cut = chat.cut(index)
        above = len(chat.block(index)) - cut - (height - 1)  # its rows above the pane
        if above > 0:
            return state.scroll, (chat.at(index).id, cut + min(above, page))
    used, step = 0, 0
    while index - step > 0:
        used += len(chat.block(index - step))
        if used > page:
            break
        step += 1
    return min(state.scroll + max(1, step), max_scroll(state, width, height)), (0, 0)


def page_down(state: AppState, width: int, height: int) -> tuple[int, tuple[int, int]]:
    """The scroll (and scroll_cut) one screen forward, less two rows; into
    a message taller than the pane from its top."""
    if state.active_chat is None:
        return 0, (0, 0)
    chat = _Chat(state, width)
    page = max(1, height - 3)
    index = chat.anchor(state.scroll)
    cut = chat.cut(index)
    if cut:
        message_id = chat.at(index).id
        return state.scroll, (message_id, cut - page) if cut > page else (0, 0)
    if state.scroll <= 0:
        return 0, (0, 0)
    used, step = 0, 0
    while index + 1 + step < chat.total:
        used += len(chat.block(index + 1 + step))
        if used > page:
            break
        step += 1
    scroll = max(0, min(state.scroll, max_scroll(state, width, height)) - max(1, step))
    bottom = chat.anchor(scroll)
    tall = len(chat.block(bottom)) - (height - 1)
    if tall > 0 and chat.at(bottom).id:
        return scroll, (chat.at(bottom).id, tall)  # its top on the top row
    return scroll, (0, 0)


def max_scroll(state: AppState, width: int, height: int) -> int:
    """The most messages that may be hidden below: while older pages may
    load, all but one; once the first message is loaded, so many that the
    top of the chat is at the top row (a marker row under the messages)."""
    if state.active_chat is None:
        return 0
    chat = _Chat(state, width)
    if chat.history.has_more or chat.history.loading:
        return max(0, chat.total - 1)
    used = len(chat.top())
    for index in range(chat.total):
        used += len(chat.block(index))
        if used > height - 1:
            # The message before this one is the lowest whose rows, with all
            # above them, still fit: the view fills the rest from below.
            return chat.total - 1 - max(0, index - 1)
    return 0


Sized = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Mouse:
    """What a click or the wheel asks for: the app dispatches it (the views
    import no actions). Only when mouse support is on (--no-mouse)."""

    open_chat: Callable[[int], None]
    wheel: Callable[[bool], None]  # True: up, back in the history


class RowsControl(UIControl):
    """Rows made for the pane's size; `on_size` hears the size each draw
    (the app hands it to the reducers: paging moves by a screen)."""

    def __init__(
        self,
        rows: Callable[[int, int], list[StyleAndTextTuples]],
        on_size: Sized | None = None,
    ) -> None:
        self._rows = rows
        self._on_size = on_size

    def is_focusable(self) -> bool:
        return False

    def create_content(self, width: int, height: int | None) -> UIContent:
        height = height or 24
        if self._on_size is not None:
            self._on_size(width, height)
        rows = self._rows(width, height)
        return UIContent(get_line=lambda i: rows[i], line_count=len(rows), show_cursor=False)


class MessagesControl(RowsControl):
    def __init__(
        self,
        state: Callable[[], AppState],
        on_size: Sized | None = None,
        mouse: Mouse | None = None,
    ) -> None:
        super().__init__(self._visible, on_size)
        self._state = state
        self._mouse = mouse
        # The rows last drawn, and for what: a key that changes nothing here
        # (typing on the message line) redraws without walking the chat again.
        self._drawn: tuple[AppState, int, int, list[StyleAndTextTuples]] | None = None

    def _visible(self, width: int, height: int) -> list[StyleAndTextTuples]:
        state = self._state()
        drawn = self._drawn
        if drawn is not None and drawn[0] is state and drawn[1:3] == (width, height):
            return drawn[3]
        rows = visible_rows(state, width, height)
        self._drawn = (state, width, height, rows)
        return rows

    def mouse_handler(self, mouse_event: MouseEvent) -> NotImplementedOrNone:
        """The wheel scrolls the messages."""
        kind = mouse_event.event_type
        if self._mouse is None or kind not in (
            MouseEventType.SCROLL_UP,
            MouseEventType.SCROLL_DOWN,
        ):
            return NotImplemented
        self._mouse.wheel(kind is MouseEventType.SCROLL_UP)
        return None

    def get_line_prefix(self) -> GetLinePrefixCallable | None:  # pragma: no cover - unused
        return None
