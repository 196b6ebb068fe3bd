"""The open chat's messages. Renders only what fits on screen, from the
newest line up, so a chat with 10,000 loaded messages costs what 40 do."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import GetLinePrefixCallable, UIContent, UIControl

from crab.tui.state import AppState, Line
from crab.tui.views.text import wrap

NAME_WIDTH = 12


def _rows(line: Line, width: int, mine: bool) -> list[StyleAndTextTuples]:
    when = line.sent_at.astimezone().strftime("%H:%M")
    name = line.sender.username[:NAME_WIDTH]
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
    """The rows to show, top to bottom, honouring the scroll position."""
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
    lines = list(history.lines) + [x for x in state.outbox if x.chat_id == chat_id]
    need = height + state.scroll
    rows: list[StyleAndTextTuples] = []  # bottom-up
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        rows.extend(reversed(_rows(line, width, line.sender.id == me)))
        before = lines[index - 1] if index > 0 else None
        day = _day(line.sent_at)
        if before is None or _day(before.sent_at) != day:
            rows.append([("class:day", f"── {day} ──")])
        if len(rows) >= need:
            break
    else:
        if history.loading:
            rows.append([("class:hint", "loading older messages...")])
        elif not history.has_more:
            rows.append([("class:hint", "This is the beginning of the chat.")])
    rows.reverse()
    end = len(rows) - state.scroll if state.scroll else len(rows)
    shown = rows[max(0, end - height) : end]
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
