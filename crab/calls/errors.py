"""Errors of the call media layer that a user can act on."""

from __future__ import annotations


class CallDeviceError(Exception):
    """A microphone, speaker or camera that cannot be opened: the message
    names the device and says how to list the ones there are."""


LIST_HINT = "run `crab chat --list-devices` to see the devices there are"
