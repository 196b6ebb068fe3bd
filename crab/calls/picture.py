"""A video frame as terminal cells: each cell is an upper half block (U+2580)
whose foreground is the top pixel and whose background is the bottom pixel.

Pure numpy; the result is (style, text) fragments that prompt_toolkit draws.
prompt_toolkit parses every new style string once, so the colours are
quantised to keep the number of distinct (top, bottom) pairs small, and runs
of equal pairs become one fragment.

In 256-colour mode the colours are snapped to xterm's 6x6x6 cube and grey
ramp and named by the palette entry's exact hex: prompt_toolkit has no names
for palette indexes, and its 8-bit output turns an exact palette colour into
that index (``38;5;N``), never into a 24-bit escape.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Fragments = list[tuple[str, str]]

HALF_BLOCK = "\u2580"
MAX_SIDE = 4096  # a frame wider or taller than this is refused, not scaled
MAX_CELLS = 1000  # columns or rows of a pane; beyond this is not a terminal

# xterm's 256-colour palette beyond the 16 system colours (which terminals
# theme, so prompt_toolkit never maps to them).
_CUBE_LEVELS = np.array([0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF], dtype=np.int32)
_GREY_LEVELS = np.arange(24, dtype=np.int32) * 10 + 8
# Nearest level for each channel value, and nearest grey for each mean.
_CUBE_NEAREST = _CUBE_LEVELS[np.abs(np.arange(256)[:, None] - _CUBE_LEVELS).argmin(axis=1)]
_GREY_NEAREST = _GREY_LEVELS[np.abs(np.arange(256)[:, None] - _GREY_LEVELS).argmin(axis=1)]


class PictureError(ValueError):
    """A frame that cannot be drawn: wrong type, shape or size."""


def check_frame(frame: object) -> Image:
    """The frame as an RGB image, or PictureError saying what is wrong."""
    if not isinstance(frame, np.ndarray):
        raise PictureError(f"a frame is a numpy array, not {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise PictureError(f"a frame holds uint8 pixels, not {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise PictureError(f"a frame is height x width x 3 (RGB), not {frame.shape}")
    height, width = frame.shape[0], frame.shape[1]
    if height == 0 or width == 0:
        raise PictureError("a frame has no pixels")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise PictureError(f"a frame is at most {MAX_SIDE} pixels a side, not {width}x{height}")
    return frame


def _check_size(cols: int, rows: int) -> None:
    if not (0 < cols <= MAX_CELLS and 0 < rows <= MAX_CELLS):
        raise PictureError(f"a picture is 1..{MAX_CELLS} cells a side, not {cols}x{rows}")


def fitted_size(width: int, height: int, cols: int, rows: int) -> tuple[int, int]:
    """Width and height in pixels of a width x height picture scaled into a
    cols x (rows * 2) box with its aspect kept (at least one pixel each)."""
    scale = min(cols / width, rows * 2 / height)
    return max(1, min(cols, round(width * scale))), max(1, min(rows * 2, round(height * scale)))


def fit(frame: np.ndarray, cols: int, rows: int) -> Image:
    """RGB HxWx3 uint8 -> (rows*2) x cols x 3, aspect kept, letterboxed with
    black. A cell is about twice as tall as wide, so its two pixels are
    square-ish. Scaling picks the nearest pixel: cheap, and at terminal sizes
    the loss does not show."""
    image = check_frame(frame)
    _check_size(cols, rows)
    height, width = image.shape[0], image.shape[1]
    new_width, new_height = fitted_size(width, height, cols, rows)
    ys = (np.arange(new_height) * height) // new_height
    xs = (np.arange(new_width) * width) // new_width
    out = np.zeros((rows * 2, cols, 3), dtype=np.uint8)
    top = (rows * 2 - new_height) // 2
    left = (cols - new_width) // 2
    out[top : top + new_height, left : left + new_width] = image[ys[:, None], xs[None, :]]
    return out


@lru_cache(maxsize=8)
def _quantise_table(bits: int) -> Image:
    levels = (1 << bits) - 1
    # Buckets spread over the full 0..255 range so black stays black and
    # white stays white.
    return ((np.arange(256) >> (8 - bits)) * 255 // levels).astype(np.uint8)


def quantise(img: np.ndarray, bits: int = 4) -> Image:
    """Keep `bits` bits a channel (1..8): fewer distinct colours, so fewer
    style strings for prompt_toolkit to parse."""
    if not 1 <= bits <= 8:
        raise PictureError(f"quantise keeps 1..8 bits a channel, not {bits}")
    if bits == 8:
        return img.astype(np.uint8, copy=False)
    table: Image = _quantise_table(bits)
    out: Image = table[img]
    return out


def to_palette(img: np.ndarray) -> Image:
    """Each pixel snapped to the nearest of xterm's 240 cube and grey colours."""
    rgb = img.astype(np.int32)
    cube = _CUBE_NEAREST[img]
    grey = _GREY_NEAREST[rgb.sum(axis=-1) // 3][..., None]
    cube_error = ((rgb - cube) ** 2).sum(axis=-1)
    grey_error = ((rgb - grey) ** 2).sum(axis=-1)
    out: Image = np.where((grey_error < cube_error)[..., None], grey, cube).astype(np.uint8)
    return out


@lru_cache(maxsize=65536)
def _style(pair: int) -> str:
    return f"fg:#{pair >> 24:06x} bg:#{pair & 0xFFFFFF:06x}"


def cells(img: np.ndarray, truecolor: bool) -> list[Fragments]:
    """Rows of (style, text) fragments for prompt_toolkit, one row per two
    pixel rows: runs of equal (top, bottom) colours merged into one fragment,
    styles "fg:#rrggbb bg:#rrggbb". Unless truecolor, every colour is
    snapped to the palette (to_palette; a no-op on snapped colours)."""
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] % 2:
        raise PictureError(f"cells need an even number of RGB rows, not {img.shape}")
    if not truecolor:
        img = to_palette(img)
    rgb = img.astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pairs = (packed[0::2] << 24) | packed[1::2]  # rows x cols, top colour high
    width = pairs.shape[1]
    # Where a run starts: column 0 and wherever the pair differs from the left.
    starts = np.ones(pairs.shape, dtype=bool)
    starts[:, 1:] = pairs[:, 1:] != pairs[:, :-1]
    rows: list[Fragments] = []
    for row, row_starts in zip(pairs.tolist(), starts, strict=True):
        columns = np.flatnonzero(row_starts).tolist()
        ends = [*columns[1:], width]
        rows.append(
            [
                (_style(row[start]), HALF_BLOCK * (end - start))
                for start, end in zip(columns, ends, strict=True)
            ]
        )
    return rows


def tile(count: int, cols: int, rows: int) -> list[tuple[int, int, int, int]]:
    """Layout for `count` pictures in a cols x rows pane: (x, y, w, h) each,
    in a grid chosen so a 4:3 picture comes out largest. Tiles do not
    overlap and stay inside the pane; when not all fit in one cell each, only
    the first ones get a tile."""
    if count <= 0 or cols <= 0 or rows <= 0:
        return []
    count = min(count, cols * rows)
    best: tuple[int, int, int] | None = None  # (score, columns, rows)
    for grid_cols in range(1, min(count, cols) + 1):
        grid_rows = -(-count // grid_cols)
        if grid_rows > rows:
            continue
        w, h = cols // grid_cols, rows // grid_rows
        # Width of the largest 4:3 picture in a w x h tile (2 pixels a cell).
        score = min(w, h * 2 * 4 // 3)
        if best is None or score > best[0]:
            best = (score, grid_cols, grid_rows)
    assert best is not None  # grid_cols == min(count, cols) always fits
    _, grid_cols, grid_rows = best
    w, h = cols // grid_cols, rows // grid_rows
    return [((i % grid_cols) * w, (i // grid_cols) * h, w, h) for i in range(count)]
