"""Request ids: the client's, checked, or one made for this call. Either
way the command carries one, so a broker redelivery is recognised too."""

from __future__ import annotations

import unicodedata
import uuid

from crab.errors import InvalidArgument

MAX_REQUEST_ID_CHARS = 64


def request_id(given: str = "") -> str:
    """`given` if it is a usable request id; a fresh one if the client sent none."""
    if not given:
        return uuid.uuid4().hex
    if len(given) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgument(f"request_id must be at most {MAX_REQUEST_ID_CHARS} characters")
    for ch in given:
        if unicodedata.category(ch) == "Cc":
            raise InvalidArgument(f"request_id contains a control character (U+{ord(ch):04X})")
    return given
