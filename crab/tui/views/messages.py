"""The open chat's messages. Renders only what fits on screen, from the
bottom of the view up, so a chat with 10,000 loaded messages costs what 40
do, at any scroll position."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import GetLinePrefixCallable, UIContent, UIControl

from crab.tui.state import AppState, Line
from crab.tui.views.text import one_line, wrap

NAME_WIDTH = 12


def _rows(line: Line, width: int, mine: bool) -> list[StyleAndTextTuples]:
    when = line.sent_at.astimezone().strftime("%H:%M")
    name = one_line(line.sender.username)[:NAME_WIDTH]
    style = "class:mine" if mine else "class:sender"
    text_style = "class:pending" if line.pending else ""
    body_width = max(10, width - 6 - NAME_WIDTH - 1)
    rows: list[StyleAndTextTuples] = []
    for i, part in enumerate(wrap(line.text, body_width)):
        if i == 0:
            head: StyleAndTextTuples = [
                ("class:time", f"{when} "),
                (style, f"{name:<{NAME_WIDTH}} "),
            ]
        else:
            head = [("", " " * (6 + NAME_WIDTH + 1))]
        rows.append([*head, (text_style, part)])
    if line.pending:
        rows[-1].append(("class:pending", "  (sending)"))
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
    index = total - 1 - min(state.scroll, max(0, total - 1))
    while index >= 0 and len(rows) < height:
        line = at(index)
        rows.extend(reversed(_rows(line, width, line.sender.id == me)))
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
