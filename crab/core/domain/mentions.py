"""Mentions in a message's text: `@username` names one person, `@room`
everyone in the chat. The server parses them (so every client agrees) and
stores those that name a member of the chat (storage/mentions.py).

A mention is '@' followed by a username as validation.USERNAME_RE has it
(ASCII letters, digits, '_', '.', '-'; 3 to 32 of them; any case, since
usernames are stored lower-cased), and not preceded by one of those
characters or another '@': "bob@example.com" and "@@bob" mention nobody.
A sentence may end right after a name ("thanks @bob."), so a run that
ends in '.' or '-' also offers the name without them. Anything else is
plain text: parsing never fails, and looks at no more than
MAX_MENTIONS names however many '@' the text holds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crab.core.domain.validation import USERNAME_RE

MAX_MENTIONS = 50  # distinct names counted in one message; the rest is text
ROOM = "room"  # @room: everyone in the chat (a user named "room" is in it too)

# The run after '@' is matched whole (then judged as a username), so a
# 40-letter run is not read as a 32-letter name followed by text.
_MENTION = re.compile(r"(?<![A-Za-z0-9_.@-])@([A-Za-z0-9_.-]+)", re.ASCII)
_TRAILING = ".-"


@dataclass(frozen=True, slots=True)
class Mentions:
    usernames: tuple[str, ...] = ()  # lower-cased, distinct, in order of appearance
    room: bool = False

    def __bool__(self) -> bool:
        return self.room or bool(self.usernames)


NONE = Mentions()


def parse_mentions(text: str) -> Mentions:
    """The usernames and @room a text mentions (see the module's doc)."""
    if "@" not in text:  # nearly every message: nothing more to look at
        return NONE
    names: dict[str, None] = {}  # ordered set
    room = False
    for match in _MENTION.finditer(text):
        run = match.group(1).lower()
        for name in (run, run.rstrip(_TRAILING)):
            if name == ROOM:
                room = True
            elif name not in names and USERNAME_RE.match(name):
                names[name] = None
        if len(names) >= MAX_MENTIONS:
            break
    return Mentions(tuple(names)[:MAX_MENTIONS], room)
