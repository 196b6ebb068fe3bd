"""Attack 9, looking like someone else: invisible and format characters,
and stacks of combining marks, are refused in display names and room names
(INVALID_ARGUMENT naming the code point), while message text keeps what
people type (emoji sequences joined by U+200D arrive intact)."""

from __future__ import annotations

import uuid

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.core.domain.validation import check_visible, clean_display_name, clean_room_name
from crab.errors import InvalidArgument
from crab.proto.crab import v1 as pb
from tests.helpers.chats import Bystander
from tests.helpers.process import CrabProcess
from tests.helpers.server import PASSWORD

HIDDEN = {
    "zero width space": "\u200b",
    "zero width non-joiner": "\u200c",
    "zero width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "tag latin capital a": "\U000e0041",
    "unassigned": "\U000e0fff",
    "private use": "\ue000",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "hangul filler": "\u3164",
}
ZALGO = "e\u0301\u0302\u0303\u0304"  # four marks stacked on one letter
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_names_refuse_hidden_characters_naming_the_code_point(char: str) -> None:
    for check in (lambda v: clean_display_name(v, "alice"), clean_room_name):
        with pytest.raises(InvalidArgument, match=f"U\\+{ord(char):04X}"):
            check(f"ali{char}ce")


def test_names_keep_what_people_write() -> None:
    for name in ("Zoë", "José Müller", "Đặng Thị Ngọc", "Ἀθηνᾶ", "東京 ops", "🦀 crab", "❤️ team"):
        assert clean_room_name(name) == name
        assert clean_display_name(name, "x") == name
    check_visible("e\u0301\u0302\u0303", "name")  # three marks: still a letter
    with pytest.raises(InvalidArgument, match="combining marks"):
        check_visible(ZALGO, "name")


async def status_of(call: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as err:
        await call  # type: ignore[misc]
    return err.value.status, err.value.message or ""


@pytest.mark.slow  # a real crab serve process
async def test_hidden_names_are_refused_by_a_real_server(
    hostile_server: CrabProcess, bystander: Bystander
) -> None:
    alice = bystander.alice
    for label, char in HIDDEN.items():
        name = f"u{uuid.uuid4().hex[:8]}"
        status, message = await status_of(
            alice.accounts.sign_up(
                pb.SignUpRequest(username=name, password=PASSWORD, display_name=f"bob{char}")
            )
        )
        assert (status, f"U+{ord(char):04X}" in message) == (Status.INVALID_ARGUMENT, True), label
        status, message = await status_of(
            alice.chats.create_room(
                pb.CreateRoomRequest(name=f"ops{char}"), metadata=alice.metadata
            )
        )
        assert (status, f"U+{ord(char):04X}" in message) == (Status.INVALID_ARGUMENT, True), label
    status, message = await status_of(
        alice.chats.create_room(pb.CreateRoomRequest(name=f"ops {ZALGO}"), metadata=alice.metadata)
    )
    assert status is Status.INVALID_ARGUMENT and "combining marks" in message
    mine = await alice.chats.my_chats(pb.Empty(), metadata=alice.metadata)
    assert [c.chat.name for c in mine.chats if c.chat] == ["ops"]  # nothing else made
    await bystander.check()


@pytest.mark.slow  # a real crab serve process
async def test_message_text_keeps_emoji_sequences(bystander: Bystander) -> None:
    text = f"family {FAMILY} and a hidden\u200bspace"
    async with bystander.alice.session() as mine:
        await mine.send(bystander.room, text)
        await mine.wait_for(lambda f: f.ack is not None)
    arrived = await bystander.live.wait_for(lambda f: f.message is not None)
    assert arrived.message is not None and arrived.message.text == text
    await bystander.check()
