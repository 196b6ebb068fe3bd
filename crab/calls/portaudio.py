"""sounddevice (PortAudio) behind a small typed surface: importing it fails
without Debian's libportaudio2, and a device name a user typed must become
a clear error rather than a PortAudio traceback."""

from __future__ import annotations

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


def device_index(name: str, kind: Kind) -> int | None:
    """The PortAudio device for a name ("default" -> None, the system's
    default), or CallDeviceError naming it."""
    sd = sounddevice()
    role = "microphone" if kind == "input" else "speaker"
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
    return [str(info["name"]) for info in sd.query_devices() if info[channels] > 0]
