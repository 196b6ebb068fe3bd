"""The call's video pane: the others' pictures tiled, each under its name, and
mine small in the bottom-right corner (or the whole pane while nobody else's
picture has arrived), drawn with half blocks (crab.calls.picture).

A picture is converted only when a new frame arrived or its tile changed
size; frames that arrive between two draws replace each other, so a slow
terminal skips frames instead of queueing them. show() stores a frame and
returns at once: the caller invalidates the app to get a draw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import StringIO

from prompt_toolkit.application import Application
from prompt_toolkit.application.current import set_app
from prompt_toolkit.data_structures import Size
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.layout import Layout, Window
from prompt_toolkit.layout.controls import UIContent, UIControl
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.utils import get_cwidth

from crab.calls.picture import (
    MAX_CELLS,
    Fragments,
    Image,
    PictureError,
    cells,
    check_frame,
    fit,
    quantise,
    tile,
)
from crab.tui.views.text import clip

# Bits a colour channel keeps in truecolor mode (256-colour mode snaps to
# the palette instead). Each new colour pair costs prompt_toolkit a style
# parse and a cache entry it keeps for the app's life; 4 bits made about four
# times the pairs of 3 and missed the draw-time target, so 3.
TRUECOLOR_BITS = 3
NAME_STYLE = "class:video.name"
# Cells a draw fills at most (a 100x30 area): draw time grows with them.
MAX_DRAWN_CELLS = 3000
SELF_SHARE = 4  # my picture is a quarter of the pane's width


@dataclass
class _Picture:
    name: str
    frame: Image
    fresh: bool = True  # a frame not yet converted
    rows: list[Fragments] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # cols, rows of `rows`


@dataclass
class _Placed:
    x: int
    y: int
    w: int
    lines: list[Fragments]  # each exactly w columns


class VideoPane(UIControl):
    """A UIControl: put it in a Window (`Window(VideoPane(truecolor))`)."""

    def __init__(self, truecolor: bool, max_cells: int = MAX_DRAWN_CELLS) -> None:
        self.truecolor = truecolor
        self.max_cells = max(1, max_cells)
        self.frames_drawn = 0  # pictures converted to cells
        self.frames_refused = 0  # frames show() would not take
        self._others: dict[int, _Picture] = {}
        self._self: _Picture | None = None
        self._changes = 0
        self._drawn: tuple[int, int, int, list[StyleAndTextTuples]] | None = None

    # Fed from the call (asyncio loop, prompt_toolkit's thread).

    def show(self, user_id: int, name: str, frame: Image) -> None:
        """The newest frame from `user_id`; a frame that is not an RGB image
        of a sane size is counted in frames_refused and ignored."""
        try:
            image = check_frame(frame)
        except PictureError:
            self.frames_refused += 1
            return
        picture = self._others.get(user_id)
        if picture is None:
            self._others[user_id] = _Picture(name, image)
        else:
            picture.name, picture.frame, picture.fresh = name, image, True
        self._changes += 1

    def show_self(self, frame: Image | None) -> None:
        """My camera's newest frame; None takes my picture away (camera off)."""
        if frame is None:
            self._self = None
        else:
            try:
                image = check_frame(frame)
            except PictureError:
                self.frames_refused += 1
                return
            if self._self is None:
                self._self = _Picture("", image)
            else:
                self._self.frame, self._self.fresh = image, True
        self._changes += 1

    def remove(self, user_id: int) -> None:
        if self._others.pop(user_id, None) is not None:
            self._changes += 1

    def user_ids(self) -> set[int]:
        """Whose pictures the pane holds."""
        return set(self._others)

    # Drawn by prompt_toolkit.

    def is_focusable(self) -> bool:
        return False

    def create_content(self, width: int, height: int | None) -> UIContent:
        height = 1 if height is None else height
        drawn = self._drawn
        if drawn is None or drawn[:3] != (self._changes, width, height):
            drawn = (self._changes, width, height, self._compose(width, height))
            self._drawn = drawn
        lines = drawn[3]
        return UIContent(get_line=lambda i: lines[i], line_count=len(lines), show_cursor=False)

    def _compose(self, width: int, height: int) -> list[StyleAndTextTuples]:
        if width < 1 or height < 1:
            return [[] for _ in range(max(0, height))]
        # Every drawn cell costs prompt_toolkit time on the loop at each
        # frame: a big pane draws its pictures in a centred area of at most
        # max_cells, shaped like the pane.
        scale = min(1.0, math.sqrt(self.max_cells / (width * height)))
        used_width = min(MAX_CELLS, max(1, int(width * scale)))
        used_height = min(MAX_CELLS, max(1, int(height * scale)))
        left, top = (width - used_width) // 2, (height - used_height) // 2
        placed = self._place(used_width, used_height)
        for item in placed:
            item.x, item.y = item.x + left, item.y + top
        return _flatten(placed, width, height)

    def _place(self, width: int, height: int) -> list[_Placed]:
        placed: list[_Placed] = []
        others = list(self._others.values())
        for picture, (x, y, w, h) in zip(others, tile(len(others), width, height), strict=False):
            label = clip(picture.name, w)
            lines: list[Fragments] = [[(NAME_STYLE, label + " " * (w - get_cwidth(label)))]]
            if h > 1:
                lines += self._converted(picture, w, h - 1)
            placed.append(_Placed(x, y, w, lines))
        mine = self._self
        if mine is not None:
            if others:
                w = max(1, width // SELF_SHARE)
                frame_h, frame_w = mine.frame.shape[0], mine.frame.shape[1]
                h = min(max(1, height // 2), max(1, round(w * frame_h / frame_w / 2)))
                x, y = width - w, height - h
            else:
                x, y, w, h = 0, 0, width, height
            placed.append(_Placed(x, y, w, self._converted(mine, w, h)))
        return placed

    def _converted(self, picture: _Picture, cols: int, rows: int) -> list[Fragments]:
        if picture.fresh or picture.size != (cols, rows):
            image = fit(picture.frame, cols, rows)
            if self.truecolor:
                image = quantise(image, TRUECOLOR_BITS)
            picture.rows = cells(image, self.truecolor)
            picture.size, picture.fresh = (cols, rows), False
            self.frames_drawn += 1
        return picture.rows


def _flatten(placed: list[_Placed], width: int, height: int) -> list[StyleAndTextTuples]:
    """Rows of the pane; a later picture covers an earlier one where they meet
    (mine over the others'), and the gaps are blank."""
    rows: list[StyleAndTextTuples] = []
    for y in range(height):
        spans: list[tuple[int, int, Fragments]] = []  # x, w, fragments
        for item in placed:
            if not item.y <= y < item.y + len(item.lines):
                continue
            start, end = item.x, item.x + item.w
            kept = []
            for x, w, fragments in spans:
                if x + w <= start or x >= end:
                    kept.append((x, w, fragments))
                    continue
                if x < start:
                    kept.append((x, start - x, _cut(fragments, 0, start - x)))
                if x + w > end:
                    kept.append((end, x + w - end, _cut(fragments, end - x, w)))
            kept.append((start, item.w, item.lines[y - item.y]))
            spans = kept
        row: StyleAndTextTuples = []
        at = 0
        for x, w, fragments in sorted(spans, key=lambda span: span[0]):
            if x > at:
                row.append(("", " " * (x - at)))
            row.extend(fragments)
            at = x + w
        rows.append(row)
    return rows


def _cut(fragments: Fragments, start: int, end: int) -> Fragments:
    """Columns start..end of a row of fragments; half of a wide character
    becomes a space."""
    out: Fragments = []
    at = 0
    for style, text in fragments:
        w = get_cwidth(text)
        if at + w <= start or at >= end:
            pass
        elif start <= at and at + w <= end:
            out.append((style, text))
        else:
            piece = []
            x = at
            for ch in text:
                cw = get_cwidth(ch)
                if start <= x and x + cw <= end:
                    piece.append(ch)
                elif x < end and x + cw > start:
                    piece.append(" " * (min(end, x + cw) - max(start, x)))
                x += cw
            out.append((style, "".join(piece)))
        at += w
    return out


def draw_cost(frames: Sequence[Image], cols: int, rows: int, truecolor: bool) -> list[float]:
    """Seconds each frame takes from show() to bytes for the terminal: the
    conversion and prompt_toolkit's rendering into a vt100 output (a
    StringIO) of cols x rows, in the colour depth asked for, one remote
    picture drawn as the pane draws it (within MAX_DRAWN_CELLS). The first
    frames cost more: every colour pair is new to prompt_toolkit then."""
    pane = VideoPane(truecolor)
    sink = StringIO()
    depth = ColorDepth.TRUE_COLOR if truecolor else ColorDepth.DEPTH_8_BIT
    output = Vt100_Output(sink, lambda: Size(rows=rows, columns=cols), default_color_depth=depth)
    costs: list[float] = []
    with create_pipe_input() as keys:
        app: Application[None] = Application(
            layout=Layout(Window(pane)), input=keys, output=output, full_screen=True
        )
        with set_app(app):
            for frame in frames:
                started = time.perf_counter()
                pane.show(1, "peer", frame)
                app.renderer.render(app, app.layout)
                costs.append(time.perf_counter() - started)
                sink.seek(0)
                sink.truncate()
    return costs
