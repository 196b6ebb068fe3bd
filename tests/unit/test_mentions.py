"""The mention parser: what `@name` and `@room` mean in a text, and that
garbage is plain text (never an error, never unbounded work)."""

from __future__ import annotations

import time

import pytest

from crab.core.domain.mentions import MAX_MENTIONS, NONE, Mentions, parse_mentions


def test_a_text_without_an_at_sign_mentions_nobody() -> None:
    assert parse_mentions("hello all") is NONE
    assert not parse_mentions("hello all")


def test_names_are_lowercased_distinct_in_order_of_appearance() -> None:
    said = parse_mentions("@Bob ask @alice, then @BOB again (@carol_2)")
    assert said == Mentions(("bob", "alice", "carol_2"), room=False)


def test_room_mentions_everyone_and_is_not_a_name() -> None:
    assert parse_mentions("@room deploy at 5") == Mentions((), room=True)
    assert parse_mentions("all of you, @ROOM!") == Mentions((), room=True)
    assert parse_mentions("@room.") == Mentions(("room.",), room=True)  # see below
    # A longer run is a username that starts with "room".
    assert parse_mentions("@roomba") == Mentions(("roomba",), room=False)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # A sentence may end after the name, and a username may end in '.':
        # both are offered (only members are stored).
        ("thanks @bob.", ("bob.", "bob")),
        ("@bob...", ("bob...", "bob")),
        ("@bob-, hi", ("bob-", "bob")),
        ("@a.b-c_d ok", ("a.b-c_d",)),
        ("@bob's idea", ("bob",)),
        ("(@bob)", ("bob",)),
        ("@bob\n@alice", ("bob", "alice")),
        ("«@bob»", ("bob",)),
    ],
)
def test_where_a_name_ends(text: str, names: tuple[str, ...]) -> None:
    assert parse_mentions(text).usernames == names


@pytest.mark.parametrize(
    "text",
    [
        "@",
        "@ @ @",
        "@@",
        "@@bob",  # not preceded by '@'
        "bob@example.com",  # an address, not a mention
        "x_@bob",
        "@ab",  # too short for a username
        "@" + "a" * 33,  # too long: not the first 32 letters of it
        "@\uff42\uff4f\uff42",  # fullwidth letters are not ASCII
        "@bób",  # neither are accented ones (the run stops at ó: "b" is too short)
        "@\u212aelvin",  # KELVIN SIGN does not fold to k here
        "@🦀🦀🦀",
        "@\u200bbob",
    ],
)
def test_garbage_mentions_nobody(text: str) -> None:
    assert parse_mentions(text) == NONE


def test_at_most_MAX_MENTIONS_distinct_names_are_counted() -> None:
    text = " ".join(f"@user{i:03}" for i in range(MAX_MENTIONS + 30)) + " @room"
    said = parse_mentions(text)
    assert said.usernames == tuple(f"user{i:03}" for i in range(MAX_MENTIONS))
    assert not said.room  # past the limit, the rest is text


def test_repeats_do_not_count_towards_the_limit() -> None:
    text = "@bob " * 1000 + "@alice"
    assert parse_mentions(text).usernames == ("bob", "alice")


@pytest.mark.parametrize(
    "text", ["@" * 4000, "@a" * 2000, "a@" * 2000, "@" + "a." * 1999, "@room " * 666]
)
def test_a_long_text_of_at_signs_is_parsed_quickly(text: str) -> None:
    started = time.perf_counter()
    parse_mentions(text)
    assert time.perf_counter() - started < 0.05
