"""Picture types of a call and typed conversions from PyAV frames (PyAV
types to_ndarray as a union of every pixel format's dtype)."""

from __future__ import annotations

from typing import cast

import numpy as np
import numpy.typing as npt
from av import VideoFrame

Rgb = npt.NDArray[np.uint8]  # height x width x 3
Yuv = npt.NDArray[np.uint8]  # yuv420p as PyAV lays it out: (height * 3 / 2) x width


def to_rgb(frame: VideoFrame) -> Rgb:
    return cast(Rgb, frame.to_ndarray(format="rgb24"))


def to_yuv(frame: VideoFrame, width: int, height: int) -> Yuv:
    return cast(Yuv, frame.reformat(width=width, height=height, format="yuv420p").to_ndarray())


def rgb_to_yuv(rgb: Rgb) -> Yuv:
    height, width = rgb.shape[:2]
    return to_yuv(VideoFrame.from_ndarray(rgb, format="rgb24"), width, height)


def yuv_to_rgb(yuv: Yuv) -> Rgb:
    return to_rgb(VideoFrame.from_ndarray(yuv, format="yuv420p"))
