"""sounddevice (PortAudio) behind a small typed surface: importing it fails
without Debian's libportaudio2, and a device name a user typed must become
a clear error rather than a PortAudio traceback."""

from __future__ import annotations

import os
from typing import Any, Literal

from crab.calls.errors import LIST_HINT, CallDeviceError

Kind = Literal["input", "output"]


def sounddevice() -> Any:
    try:
        import sounddevice as sd  # PortAudio is optional until a call starts
    except OSError as error:
        raise CallDeviceError(
            f"PortAudio is missing ({error}); install it (Debian: apt-get install libportaudio2)"
        ) from None
    return sd


# Under PulseAudio, PortAudio sees only "pulse" and "default"; a source or
# sink is chosen by libpulse's environment when a stream opens.
PULSE_PREFIX = "pulse:"
PULSE_ENV = {"input": "PULSE_SOURCE", "output": "PULSE_SINK"}


def rescan() -> None:
    """Re-reads the device list (PortAudio reads it once, at import): after a
    device or a sound server appeared."""
    sd = sounddevice()
    sd._terminate()
    sd._initialize()


def device_index(name: str, kind: Kind) -> int | None:
    """The PortAudio device for a name ("default" -> None, the system's
    default; "pulse:NAME" -> PulseAudio's source or sink NAME), or
    CallDeviceError naming it."""
    sd = sounddevice()
    role = "microphone" if kind == "input" else "speaker"
    if name.startswith(PULSE_PREFIX) and len(name) > len(PULSE_PREFIX):
        os.environ[PULSE_ENV[kind]] = name.removeprefix(PULSE_PREFIX)
        name = "pulse"
    if name == "default":
        try:
            sd.query_devices(kind=kind)
        except (ValueError, sd.PortAudioError) as error:
            raise CallDeviceError(f"no default {role} ({error}); {LIST_HINT}") from None
        return None
    try:
        info: Any = sd.query_devices(name, kind=kind)
    except (ValueError, sd.PortAudioError) as error:
        raise CallDeviceError(f"{role} {name!r} not found ({error}); {LIST_HINT}") from None
    index: int = info["index"]
    return index


def device_names(kind: Kind) -> list[str]:
    sd = sounddevice()
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    names = [str(info["name"]) for info in sd.query_devices() if info[channels] > 0]
    if "pulse" in names:
        names.append(
            f"{PULSE_PREFIX}NAME (a PulseAudio {'source' if kind == 'input' else 'sink'}: pactl list short)"
        )
    return names
