"""A colour per person, the same everywhere and every run: their user id
hashed into a palette readable on dark and light terminals (no green: my
own name is green)."""

from __future__ import annotations

from crab.tui.state import Person
from crab.tui.views.text import one_line

PALETTE = (
    "#5f87ff",  # blue
    "#d7875f",  # orange
    "#af5fd7",  # purple
    "#00afaf",  # teal
    "#ff5f87",  # pink
    "#d7af00",  # gold
    "#0087d7",  # azure
    "#af8700",  # brown
    "#d75fd7",  # magenta
    "#8787af",  # steel
    "#00afd7",  # cyan
    "#ff8700",  # amber
)

# For the style sheet (crab/tui/views/layout.py): class:nick-N -> colour.
NICK_STYLES = {f"nick-{n}": colour for n, colour in enumerate(PALETTE)}


def nick_class(user_id: int) -> str:
    """ "class:nick-N" for this user: Knuth's multiplicative hash, so that
    neighbouring ids (people who signed up together) differ."""
    return f"class:nick-{(user_id * 2654435761 % 2**32) * len(PALETTE) >> 32}"


def nick_style(user_id: int, me: int) -> str:
    """My own name keeps its style; anyone else's is their colour."""
    return "class:mine" if user_id == me else f"class:sender {nick_class(user_id)}"


def labelled(person: Person) -> str:
    """ "alice (Alice Liddell)": the display name beside the username when
    it says something more."""
    name = one_line(person.username)
    shown = one_line(person.display_name)
    return f"{name} ({shown})" if shown and shown != name else name
