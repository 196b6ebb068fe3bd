"""The call's video pane: the others' pictures tiled under their names, mine
in the corner, garbage frames ignored, pictures converted only when needed,
and half blocks in the right colours out of a real prompt_toolkit app."""

from __future__ import annotations

import asyncio
import re
from io import StringIO

import numpy as np
import numpy.typing as npt
from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.widgets import TextArea

from crab.calls.picture import HALF_BLOCK
from crab.tui.views.video import NAME_STYLE, VideoPane, draw_cost


def plain(
    color: tuple[int, int, int], height: int = 120, width: int = 160
) -> npt.NDArray[np.uint8]:
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:] = color
    return frame


def screen(pane: VideoPane, width: int, height: int) -> list[str]:
    content = pane.create_content(width, height)
    return ["".join(text for _, text in content.get_line(y)) for y in range(content.line_count)]


def styles_at(pane: VideoPane, width: int, height: int, x: int, y: int) -> str:
    at = 0
    for style, text in pane.create_content(width, height).get_line(y):
        if at <= x < at + len(text):
            return style
        at += len(text)
    raise AssertionError(f"nothing drawn at {x},{y}")


def test_each_picture_sits_under_its_name_and_every_row_fills_the_pane() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "alice", plain((255, 0, 0)))
    pane.show(2, "bob", plain((0, 0, 255)))
    rows = screen(pane, 80, 24)
    assert len(rows) == 24 and all(len(row) == 80 for row in rows)
    assert rows[0].startswith("alice") and rows[0][40:].startswith("bob")
    assert pane.create_content(80, 24).get_line(0)[0][0] == NAME_STYLE
    assert styles_at(pane, 80, 24, 20, 12) == "fg:#ff0000 bg:#ff0000"
    assert styles_at(pane, 80, 24, 60, 12) == "fg:#0000ff bg:#0000ff"
    assert HALF_BLOCK * 30 in rows[12]


def test_my_picture_is_small_in_the_bottom_right_corner_over_the_others() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "alice", plain((255, 0, 0)))
    pane.show_self(plain((0, 255, 0)))
    assert styles_at(pane, 80, 24, 70, 20) == "fg:#00ff00 bg:#00ff00"  # mine: 20 x 8 cells
    assert styles_at(pane, 80, 24, 59, 20) == "fg:#ff0000 bg:#ff0000"
    assert styles_at(pane, 80, 24, 65, 15) == "fg:#ff0000 bg:#ff0000"
    assert all(len(row) == 80 for row in screen(pane, 80, 24))
    pane.show_self(None)
    assert styles_at(pane, 80, 24, 65, 20) == "fg:#ff0000 bg:#ff0000"


def test_alone_my_picture_fills_the_pane() -> None:
    pane = VideoPane(truecolor=True)
    pane.show_self(plain((0, 255, 0)))
    assert styles_at(pane, 80, 24, 40, 12) == "fg:#00ff00 bg:#00ff00"


def test_a_picture_is_converted_only_for_a_new_frame_or_a_new_size() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "alice", plain((255, 0, 0)))
    screen(pane, 80, 24)
    screen(pane, 80, 24)
    assert pane.frames_drawn == 1
    pane.show(1, "alice", plain((0, 0, 255)))
    screen(pane, 80, 24)
    assert pane.frames_drawn == 2
    screen(pane, 100, 30)
    assert pane.frames_drawn == 3


def test_frames_that_arrive_between_draws_replace_each_other() -> None:
    pane = VideoPane(truecolor=True)
    for shade in range(10):
        pane.show(1, "alice", plain((shade, 0, 0)))
    screen(pane, 80, 24)
    assert pane.frames_drawn == 1
    assert styles_at(pane, 80, 24, 40, 12) == "fg:#000000 bg:#000000"  # 9 quantised to 0


def test_a_removed_person_leaves_the_pane_to_the_others() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "alice", plain((255, 0, 0)))
    pane.show(2, "bob", plain((0, 0, 255)))
    pane.remove(2)
    pane.remove(99)
    rows = screen(pane, 80, 24)
    assert rows[0].startswith("alice") and "bob" not in rows[0]


def test_garbage_frames_are_ignored_and_the_pane_keeps_drawing() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "alice", plain((255, 0, 0)))
    garbage: list[object] = [
        np.zeros((120, 160, 3), dtype=np.float64),
        np.zeros((120, 160), dtype=np.uint8),
        np.zeros((0, 0, 3), dtype=np.uint8),
        np.zeros((8192, 2, 3), dtype=np.uint8),
        "not a frame",
    ]
    for frame in garbage:
        pane.show(1, "alice", frame)  # type: ignore[arg-type]
        pane.show_self(frame)  # type: ignore[arg-type]
    assert pane.frames_refused == 2 * len(garbage)
    assert styles_at(pane, 80, 24, 40, 12) == "fg:#ff0000 bg:#ff0000"


def test_names_cannot_break_the_pane() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "\x1b[2Jevil\nname 你好" * 10, plain((255, 0, 0)))
    rows = screen(pane, 20, 6)
    assert "\x1b" not in rows[0] and "\n" not in rows[0]
    assert all(len(row) == 20 for row in rows[1:])


def test_tiny_panes_still_draw() -> None:
    pane = VideoPane(truecolor=False)
    pane.show(1, "alice", plain((255, 0, 0)))
    pane.show(2, "bob", plain((0, 0, 255)))
    pane.show_self(plain((0, 255, 0)))
    for width, height in [(1, 1), (2, 1), (3, 2), (80, 1)]:
        assert len(screen(pane, width, height)) == height


def _terminal(depth: ColorDepth) -> tuple[StringIO, Vt100_Output]:
    sink = StringIO()
    return sink, Vt100_Output(sink, lambda: Size(rows=24, columns=80), default_color_depth=depth)


async def _drawn_by_an_app(pane: VideoPane, depth: ColorDepth) -> str:
    sink, output = _terminal(depth)
    drawn = asyncio.Event()
    with create_pipe_input() as keys:
        app: Application[None] = Application(
            layout=Layout(Window(pane)), input=keys, output=output, full_screen=True
        )
        app.after_render += lambda _: drawn.set()
        running = asyncio.create_task(app.run_async())
        await asyncio.wait_for(drawn.wait(), 5)
        app.exit()
        await asyncio.wait_for(running, 5)
    return sink.getvalue()


async def test_a_real_app_prints_half_blocks_in_24_bit_colours() -> None:
    pane = VideoPane(truecolor=True)
    frame = plain((255, 0, 0))
    frame[60:] = (0, 0, 255)
    pane.show(1, "alice", frame)
    printed = await _drawn_by_an_app(pane, ColorDepth.TRUE_COLOR)
    assert "alice" in printed
    assert HALF_BLOCK in printed
    # Red on blue where the halves meet, pure red above, pure blue below.
    assert re.search(r"\x1b\[[0-9;]*38;2;255;0;0;48;2;0;0;255m" + HALF_BLOCK, printed)
    assert re.search(r"\x1b\[[0-9;]*38;2;0;0;255;48;2;0;0;255m" + HALF_BLOCK, printed)


async def test_a_real_app_in_256_colours_prints_palette_indexes_never_24_bit() -> None:
    pane = VideoPane(truecolor=False)
    rng = np.random.default_rng(5)
    pane.show(1, "alice", rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8))
    printed = await _drawn_by_an_app(pane, ColorDepth.DEPTH_8_BIT)
    assert HALF_BLOCK in printed
    assert re.search(r"38;5;\d+;48;5;\d+m" + HALF_BLOCK, printed)
    assert "38;2;" not in printed and "48;2;" not in printed


def test_draw_cost_times_each_frame_through_prompt_toolkit() -> None:
    frames = [plain((shade, 0, 255 - shade)) for shade in range(0, 250, 50)]
    costs = draw_cost(frames, 80, 24, truecolor=True)
    assert len(costs) == len(frames) and all(0 < cost < 5 for cost in costs)


def test_a_pane_of_no_size_or_of_absurd_size_draws_without_error() -> None:
    pane = VideoPane(truecolor=True)
    pane.show(1, "alice", plain((255, 0, 0)))
    pane.show_self(plain((0, 255, 0)))
    assert screen(pane, 0, 3) == ["", "", ""]
    assert screen(pane, 5, 0) == []
    rows = screen(pane, 1500, 4)
    assert len(rows) == 4 and HALF_BLOCK in rows[2] and all(len(row) <= 1500 for row in rows)


def test_a_big_pane_draws_its_pictures_in_a_centred_area_of_at_most_max_cells() -> None:
    pane = VideoPane(truecolor=True, max_cells=3000)
    pane.show(1, "alice", plain((255, 0, 0), height=60, width=200))
    rows = screen(pane, 200, 60)
    drawn = [y for y, row in enumerate(rows) if row.strip()]
    assert drawn[0] == 15 and drawn[-1] == 44  # 30 of 60 rows
    assert rows[15][50:].startswith("alice") and rows[15][:50].strip() == ""
    assert max(len(row.rstrip()) for row in rows) == 150  # 100 of 200 columns


async def test_typing_reaches_the_input_line_while_video_plays() -> None:
    pane = VideoPane(truecolor=True)
    line = TextArea(height=1)
    sink, output = _terminal(ColorDepth.TRUE_COLOR)
    enough_frames, typed = asyncio.Event(), asyncio.Event()
    line.buffer.on_text_changed += lambda buffer: typed.set() if buffer.text == "hello" else None
    rng = np.random.default_rng(11)
    with create_pipe_input() as keys:
        app: Application[None] = Application(
            layout=Layout(HSplit([Window(pane), line]), focused_element=line),
            input=keys,
            output=output,
            full_screen=True,
        )
        rendered = asyncio.Event()

        def after_render(_: object) -> None:
            rendered.set()
            if pane.frames_drawn >= 10:
                enough_frames.set()

        app.after_render += after_render

        async def play() -> None:
            while True:  # a new frame as soon as the last one is drawn
                rendered.clear()
                pane.show(1, "alice", rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8))
                app.invalidate()
                await rendered.wait()

        running = asyncio.create_task(app.run_async())
        video = asyncio.create_task(play())
        keys.send_text("hello")
        await asyncio.wait_for(asyncio.gather(typed.wait(), enough_frames.wait()), 10)
        video.cancel()
        app.exit()
        await asyncio.wait_for(running, 5)
    assert line.text == "hello" and pane.frames_drawn >= 10
    assert HALF_BLOCK in sink.getvalue()
