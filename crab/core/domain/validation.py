"""Input rules shared by every entry point. Each rule raises
InvalidArgument with a message a person can act on."""

from __future__ import annotations

import re
import unicodedata

from crab.core.domain.models import CALL_NOTE_PREFIX
from crab.errors import InvalidArgument

USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 64
MAX_ROOM_NAME_CHARS = 64
MAX_TOPIC_CHARS = 300
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


# Characters that draw nothing (or draw over others): in a name they let
# "alice" and "ali\u200bce" look the same. Format characters (Cf: zero-width
# spaces and joiners, BOM, bidi embeddings, isolates and overrides, tag
# characters), unassigned, private-use and surrogate code points, and the
# line and paragraph separators. Message text keeps them (emoji sequences
# join with U+200D); the client shows them there as escapes.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
# Letters that render as nothing (Hangul fillers), a favourite of impersonators.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
MAX_COMBINING_RUN = 3  # marks stacked on one letter; more is "zalgo" text


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def check_visible(text: str, what: str) -> None:
    """Names must look like what they are: no invisible or format
    characters, and no more than MAX_COMBINING_RUN combining marks in a row."""
    run = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category in _INVISIBLE_CATEGORIES or ch in _BLANK_LETTERS:
            raise InvalidArgument(
                f"{what} contains an invisible or format character ({_describe(ch)}); "
                "names may hold only characters that show"
            )
        run = run + 1 if category in ("Mn", "Me") else 0
        if run > MAX_COMBINING_RUN:
            raise InvalidArgument(
                f"{what} stacks more than {MAX_COMBINING_RUN} combining marks in a row "
                f"(at {_describe(ch)})"
            )


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidArgument("username must be 3 to 32 characters of a-z, 0-9, '_', '.', '-'")
    return name


def username_from(text: str) -> str | None:
    """A valid username made from what an identity provider says (a
    preferred username, an email, a subject): its part before "@", accents
    dropped, other characters as "-"; None when fewer than 3 remain."""
    local = text.split("@", 1)[0]
    ascii_only = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9_.-]+", "-", ascii_only.lower()).strip("-.")[:32].strip("-.")
    return name if USERNAME_RE.match(name) else None


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidArgument(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidArgument(f"password must be at most {MAX_PASSWORD_CHARS} characters")


def _one_line(value: str, what: str, max_chars: int) -> str:
    # Controls are checked before strip(), which would quietly eat some (\x1c, \x85).
    check_no_controls(value, what)
    check_visible(value, what)
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


def clean_new_display_name(display_name: str) -> str:
    """A display name someone sets: 1-64 characters once trimmed."""
    name = _one_line(display_name, "display name", MAX_DISPLAY_NAME_CHARS)
    if not name:
        raise InvalidArgument("display name must not be empty")
    return name


def clean_topic(topic: str) -> str:
    """A room's topic: one line of at most MAX_TOPIC_CHARS; empty clears it.
    No control character at all (a topic is drawn in every member's header)."""
    for ch in topic:
        if unicodedata.category(ch) == "Cc":
            raise InvalidArgument(
                f"topic contains a control character (U+{ord(ch):04X}); a topic is one line of text"
            )
    topic = topic.strip()
    if len(topic) > MAX_TOPIC_CHARS:
        raise InvalidArgument(f"topic must be at most {MAX_TOPIC_CHARS} characters")
    return topic


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
    if client_message_id.startswith(CALL_NOTE_PREFIX):
        raise InvalidArgument(f"client_message_id must not start with {CALL_NOTE_PREFIX!r}")


MAX_EMOJI_CHARS = 16  # code points: a skin tone or a ZWJ family fits
MAX_EMOJIS_PER_MESSAGE = 20  # distinct emojis on one message


def check_emoji(emoji: str) -> None:
    """A reaction: 1 to MAX_EMOJI_CHARS characters, no controls and no
    spaces (format characters such as U+200D ZWJ and U+FE0F stay: emoji
    sequences are made of them). Not a fixed set: any short symbol works."""
    if not emoji:
        raise InvalidArgument("emoji must not be empty")
    if len(emoji) > MAX_EMOJI_CHARS:
        raise InvalidArgument(f"emoji must be at most {MAX_EMOJI_CHARS} characters")
    for ch in emoji:
        category = unicodedata.category(ch)
        if category == "Cc" or category.startswith("Z") or ch.isspace():
            raise InvalidArgument(f"emoji contains a control or space character ({_describe(ch)})")
