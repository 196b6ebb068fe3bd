"""Frames as half-block cells: exact glyphs and colours for known frames,
aspect kept, runs merged, palette colours in 256-colour mode, tiles that fit."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from crab.calls.picture import HALF_BLOCK, PictureError, cells, fit, quantise, tile, to_palette

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)
PALETTE = {0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF}
GREYS = {8 + 10 * i for i in range(24)}


def image(rows: list[list[tuple[int, int, int]]]) -> npt.NDArray[np.uint8]:
    return np.array(rows, dtype=np.uint8)


def test_top_red_bottom_blue_is_one_run_of_half_blocks_red_on_blue() -> None:
    frame = image([[RED] * 4, [BLUE] * 4])
    assert cells(fit(frame, 4, 1), truecolor=True) == [[("fg:#ff0000 bg:#0000ff", HALF_BLOCK * 4)]]


def test_a_two_pixel_checker_alternates_the_colour_pair_every_cell() -> None:
    frame = image([[RED, GREEN] * 2, [GREEN, RED] * 2] * 2)
    red_on_green, green_on_red = "fg:#ff0000 bg:#00ff00", "fg:#00ff00 bg:#ff0000"
    expected = [(red_on_green, HALF_BLOCK), (green_on_red, HALF_BLOCK)] * 2
    assert cells(fit(frame, 4, 2), truecolor=True) == [expected, expected]


def test_runs_of_equal_pairs_merge_and_every_row_is_as_wide_as_the_picture() -> None:
    frame = np.zeros((4, 10, 3), dtype=np.uint8)
    frame[:, 3:7] = WHITE
    frame[2:, 9] = BLUE
    rows = cells(frame, truecolor=True)
    assert [text for _, text in rows[0]] == [HALF_BLOCK * 3, HALF_BLOCK * 4, HALF_BLOCK * 3]
    assert [style for style, _ in rows[1]] == [
        "fg:#000000 bg:#000000",
        "fg:#ffffff bg:#ffffff",
        "fg:#000000 bg:#000000",
        "fg:#0000ff bg:#0000ff",
    ]
    assert all(sum(len(text) for _, text in row) == 10 for row in rows)


def test_a_wide_frame_is_letterboxed_with_black_above_and_below() -> None:
    frame = np.full((100, 400, 3), 200, dtype=np.uint8)  # 4:1
    out = fit(frame, 40, 20)  # a 40 x 40 pixel box
    assert out.shape == (40, 40, 3)
    lit_rows = np.flatnonzero(out.any(axis=(1, 2)))
    assert lit_rows.tolist() == list(range(15, 25))  # 10 rows, centred
    assert (out[15:25] == 200).all()


def test_a_tall_frame_is_pillarboxed_with_black_left_and_right() -> None:
    frame = np.full((300, 100, 3), 90, dtype=np.uint8)  # 1:3
    out = fit(frame, 30, 15)  # a 30 x 30 pixel box
    lit_cols = np.flatnonzero(out.any(axis=(0, 2)))
    assert lit_cols.tolist() == list(range(10, 20))
    assert (out[:, 10:20] == 90).all()


def test_scaling_down_keeps_where_things_are() -> None:
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    frame[:120, :160] = RED  # top-left quarter
    out = fit(frame, 8, 3)  # 8 x 6 pixels for a 4:3 frame
    assert (out[:3, :4] == RED).all() and not out[3:].any() and not out[:, 4:].any()


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((0, 10, 3), dtype=np.uint8),
        np.zeros((5000, 10, 3), dtype=np.uint8),
        [[RED]],
    ],
    ids=["float", "grey", "rgba", "empty", "huge", "list"],
)
def test_a_frame_that_is_not_a_sane_rgb_image_is_refused(frame: object) -> None:
    with pytest.raises(PictureError):
        fit(frame, 10, 5)  # type: ignore[arg-type]


def test_a_picture_needs_at_least_one_cell() -> None:
    with pytest.raises(PictureError):
        fit(np.zeros((2, 2, 3), dtype=np.uint8), 0, 5)


def test_quantising_keeps_black_and_white_and_at_most_two_to_the_bits_levels() -> None:
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)
    for bits in (2, 3, 4):
        levels = np.unique(quantise(ramp, bits))
        assert len(levels) == 2**bits and levels[0] == 0 and levels[-1] == 255
    assert (quantise(ramp, 8) == ramp).all()
    with pytest.raises(PictureError):
        quantise(ramp, 0)


def test_256_colour_mode_names_only_xterm_palette_colours() -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    for row in cells(noise, truecolor=False):
        for style, _ in row:
            for part in style.split():
                r, g, b = (int(part[4:][i : i + 2], 16) for i in (0, 2, 4))
                assert {r, g, b} <= PALETTE or (r == g == b and r in GREYS), style


def test_palette_snapping_picks_a_grey_for_greys_and_the_cube_for_colours() -> None:
    snapped = to_palette(image([[(128, 128, 128), (250, 10, 10), (0, 0, 0)]]))
    assert snapped.tolist() == [[[128, 128, 128], [255, 0, 0], [0, 0, 0]]]


def test_cells_refuse_an_odd_number_of_pixel_rows() -> None:
    with pytest.raises(PictureError):
        cells(np.zeros((3, 4, 3), dtype=np.uint8), truecolor=True)


@pytest.mark.parametrize(("cols", "rows"), [(80, 24), (200, 60), (13, 7), (3, 2), (1, 1)])
def test_tiles_for_one_to_four_pictures_are_inside_the_pane_and_do_not_overlap(
    cols: int, rows: int
) -> None:
    for count in range(1, 5):
        tiles = tile(count, cols, rows)
        assert len(tiles) == min(count, cols * rows)
        taken = np.zeros((rows, cols), dtype=np.int32)
        for x, y, w, h in tiles:
            assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= cols and y + h <= rows
            taken[y : y + h, x : x + w] += 1
        assert taken.max() == 1


def test_tiles_are_as_large_as_the_pane_allows() -> None:
    assert tile(1, 80, 24) == [(0, 0, 80, 24)]
    assert tile(2, 80, 24) == [(0, 0, 40, 24), (40, 0, 40, 24)]
    assert tile(4, 80, 24) == [(0, 0, 40, 12), (40, 0, 40, 12), (0, 12, 40, 12), (40, 12, 40, 12)]
    assert tile(2, 40, 60) == [(0, 0, 40, 30), (0, 30, 40, 30)]  # a tall pane stacks
    assert tile(0, 80, 24) == [] and tile(3, 0, 24) == []


def test_every_pixel_of_a_picture_lands_in_exactly_one_cell() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    rows = cells(frame, truecolor=True)
    rebuilt = np.zeros_like(frame)
    for y, row in enumerate(rows):
        runs = [(style, len(text)) for style, text in row]
        x = 0
        for style, length in runs:
            fg, bg = (bytes.fromhex(part[4:]) for part in style.split())
            for _ in itertools.repeat(None, length):
                rebuilt[2 * y, x], rebuilt[2 * y + 1, x] = list(fg), list(bg)
                x += 1
    assert (rebuilt == frame).all()
