"""Input rules shared by every entry point. Each rule raises
InvalidArgument with a message a person can act on."""

from __future__ import annotations

import re
import unicodedata

from crab.errors import InvalidArgument

USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 64
MAX_ROOM_NAME_CHARS = 64
MAX_CLIENT_MESSAGE_ID_CHARS = 64


def _is_control(ch: str) -> bool:
    # C0, DEL and C1 controls (ESC among them) could repaint another
    # user's terminal; newline and tab are ordinary text.
    if ch in "\n\t":
        return False
    return unicodedata.category(ch) == "Cc"


def check_no_controls(text: str, what: str) -> None:
    for ch in text:
        if _is_control(ch):
            raise InvalidArgument(
                f"{what} contains a control character (U+{ord(ch):04X}); "
                "terminal escape and control sequences are not allowed"
            )


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidArgument("username must be 3 to 32 characters of a-z, 0-9, '_', '.', '-'")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidArgument(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidArgument(f"password must be at most {MAX_PASSWORD_CHARS} characters")


def _one_line(value: str, what: str, max_chars: int) -> str:
    # Controls are checked before strip(), which would quietly eat some (\x1c, \x85).
    check_no_controls(value, what)
    if "\n" in value or "\t" in value:
        raise InvalidArgument(f"{what} must be one line")
    value = value.strip()
    if len(value) > max_chars:
        raise InvalidArgument(f"{what} must be at most {max_chars} characters")
    return value


def clean_display_name(display_name: str, username: str) -> str:
    return _one_line(display_name, "display name", MAX_DISPLAY_NAME_CHARS) or username


def clean_room_name(name: str) -> str:
    name = _one_line(name, "room name", MAX_ROOM_NAME_CHARS)
    if not name:
        raise InvalidArgument("room name must not be empty")
    return name


def check_message_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise InvalidArgument("message must not be empty")
    if len(text) > max_chars:
        raise InvalidArgument(f"message is {len(text)} characters; the limit is {max_chars}")
    check_no_controls(text, "message")


MAX_ID = 2**63 - 1  # the databases' BIGINT; the wire's uint64 can say more


def clamp_id(message_id: int) -> int:
    """A message id from the wire, within what a database can compare:
    anything larger means "after every message" anyway."""
    return min(message_id, MAX_ID)


def check_client_message_id(client_message_id: str) -> None:
    if not client_message_id:
        raise InvalidArgument("client_message_id must be set (it makes re-sends safe)")
    if len(client_message_id) > MAX_CLIENT_MESSAGE_ID_CHARS:
        raise InvalidArgument(
            f"client_message_id must be at most {MAX_CLIENT_MESSAGE_ID_CHARS} characters"
        )
    check_no_controls(client_message_id, "client_message_id")
