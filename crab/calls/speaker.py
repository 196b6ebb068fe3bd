"""Where received audio goes: a PortAudio output device by name, or
nowhere ("none": a test or a muted client still measures levels)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from crab.calls import portaudio
from crab.calls.audio import FRAME_SAMPLES, RATE, Pcm
from crab.calls.errors import LIST_HINT, CallDeviceError

# Start playing once this much is buffered, so network jitter does not
# starve the sound card; beyond the cap drop the oldest so delay stays low.
PREBUFFER = 3 * FRAME_SAMPLES
CAP = 15 * FRAME_SAMPLES


class Speaker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, np.int16)
        self._started = False
        self._stream: Any = None
        if name != "none":
            self._open(name)

    def _open(self, name: str) -> None:
        sd = portaudio.sounddevice()
        index = portaudio.device_index(name, "output")
        try:
            self._stream = sd.RawOutputStream(
                device=index,
                samplerate=RATE,
                channels=1,
                dtype="int16",
                blocksize=FRAME_SAMPLES,
                callback=self._fill,
            )
        except (sd.PortAudioError, ValueError) as error:
            raise CallDeviceError(
                f"speaker {name!r} cannot be opened ({error}); {LIST_HINT}"
            ) from None

    def _fill(self, out: Any, frames: int, _time: Any, _status: Any) -> None:
        # PortAudio's thread: take what is there, pad with silence.
        with self._lock:
            take = self._buffer[:frames]
            self._buffer = self._buffer[frames:]
        data = np.zeros(frames, np.int16)
        data[: take.size] = take
        out[:] = data.tobytes()

    def play(self, pcm: Pcm) -> None:
        if self._stream is None:
            return
        with self._lock:
            self._buffer = np.concatenate((self._buffer, pcm))[-CAP:]
            ready = self._buffer.size >= PREBUFFER
        if ready and not self._started:
            self._started = True
            self._stream.start()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
