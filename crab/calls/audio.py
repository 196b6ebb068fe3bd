"""The audio format of a call and small PCM helpers shared by the
microphone and speaker sides: 48 kHz mono signed 16-bit, 20 ms frames
(what Opus carries)."""

from __future__ import annotations

import fractions

import numpy as np
import numpy.typing as npt
from av import AudioFrame, AudioResampler

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)

Pcm = npt.NDArray[np.int16]


def level(pcm: Pcm) -> float:
    """RMS of the samples, 0 (silence) .. 1 (full scale)."""
    if pcm.size == 0:
        return 0.0
    samples = pcm.astype(np.float32) / 32768.0
    return min(1.0, float(np.sqrt(np.mean(samples * samples))))


def to_frame(pcm: Pcm, pts: int) -> AudioFrame:
    frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class ToPcm:
    """Any decoded audio frame -> 48 kHz mono s16 samples."""

    def __init__(self) -> None:
        self._resampler = AudioResampler(format="s16", layout="mono", rate=RATE)

    def __call__(self, frame: AudioFrame) -> Pcm:
        chunks = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


class Chunker:
    """Cuts a stream of sample runs of any length into 20 ms frames."""

    def __init__(self) -> None:
        self._pending: Pcm = np.zeros(0, np.int16)

    def feed(self, pcm: Pcm) -> list[Pcm]:
        self._pending = np.concatenate((self._pending, pcm))
        out: list[Pcm] = []
        while self._pending.size >= FRAME_SAMPLES:
            out.append(self._pending[:FRAME_SAMPLES].copy())
            self._pending = self._pending[FRAME_SAMPLES:]
        return out
