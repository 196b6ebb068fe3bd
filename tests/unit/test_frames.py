"""Frames are encoded once per message and batched per write; what the
client unpacks is exactly what the server queued."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from crab.core.api import convert, frame_encoder, upb_answers
from crab.core.api.frame_encoder import FrameEncoder
from crab.core.domain.models import Message, MessagePage, Reaction, ReplyQuote, User
from crab.core.services import live
from crab.proto.crab import v1 as pb

ALICE = User(1, "alice", "Alice")


def message(n: int, text: str = "hi") -> Message:
    return Message(7, n, ALICE, text, datetime(2026, 11, 28, tzinfo=UTC), f"c{n}")


def unpack(data: bytes) -> list[pb.ServerFrame]:
    frame = pb.ServerFrame.parse(data)
    return list(frame.batch.frames) if frame.batch is not None else [frame]


def test_one_item_is_one_plain_frame() -> None:
    (data,) = FrameEncoder().writes([message(1)])
    (frame,) = unpack(data)
    assert frame.message is not None and frame.message.id == 1


def test_queued_items_go_out_as_one_batch_in_order() -> None:
    items: list[live.Outgoing] = [live.Ready(ALICE), message(1), message(2, "two")]
    (data,) = FrameEncoder().writes(items)
    assert pb.ServerFrame.parse(data).batch is not None
    got = unpack(data)
    assert got[0].ready is not None and got[0].ready.user.username == "alice"
    assert [(f.message.id, f.message.text) for f in got[1:]] == [(1, "hi"), (2, "two")]


def test_big_batches_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frame_encoder, "BATCH_BYTES", 300)
    writes = list(FrameEncoder().writes([message(n, "x" * 100) for n in range(1, 11)]))
    assert len(writes) > 1
    ids = [f.message.id for data in writes for f in unpack(data)]
    assert ids == list(range(1, 11))


def test_a_message_is_encoded_once_for_every_stream() -> None:
    encoder = FrameEncoder()
    shared = message(1)
    first = encoder.encode(shared)
    assert encoder.encode(message(1)) is first  # another stream, same message


@pytest.mark.parametrize(
    "sample",
    [
        message(1),
        Message(
            2**62,
            2**63 + 5,
            User(2**40, "zoë", ""),
            "naïve ☃ \x1b[31m\n",
            datetime.max.replace(tzinfo=UTC),
            "",
        ),
        Message(1, 1, User(1, "a", "A"), "", datetime(1970, 1, 1, tzinfo=UTC), "c"),
        Message(1, 2, User(1, "a", "A"), "x", datetime(1969, 7, 20, 20, 17, 40, 5, UTC), "d"),
        Message(1, 3, User(1, "a", "A"), "y", datetime(2026, 11, 28, 7, 30, 1, 999999, UTC), "e"),
    ],
)
def test_upb_encodings_are_the_generated_ones(sample: Message) -> None:
    """upb_answers.py (C runtime) and convert.py (betterproto2) write the same bytes."""
    assert upb_answers.message_frame(sample) == bytes(convert.frame(sample))
    ack = live.Ack("cid-1", sample)
    assert upb_answers.ack_frame(ack) == bytes(convert.frame(ack))
    for has_more in (True, False):
        page = MessagePage(messages=[sample, message(3, "x" * 300)], has_more=has_more)
        expected = pb.MessagePage(
            messages=[convert.message(m) for m in page.messages], has_more=has_more
        )
        assert upb_answers.page(page) == bytes(expected)
    assert upb_answers.page(MessagePage(messages=[], has_more=False)) == b""


def test_a_batch_of_messages_is_built_once_for_every_stream() -> None:
    encoder = FrameEncoder()
    batch: list[live.Outgoing] = [message(1), message(2)]
    first = encoder.writes(batch)
    assert encoder.writes([message(1), message(2)]) is first  # another member's stream
    with_ack: list[live.Outgoing] = [message(1), message(2), live.Ack("c3", message(3))]
    (data,) = encoder.writes(with_ack)  # the sender's stream: its own batch
    got = unpack(data)
    assert [f.message.id for f in got[:2]] == [1, 2] and got[2].ack.message.id == 3
    assert [f.message.id for d in first for f in unpack(d)] == [1, 2]


CHANGED = Message(
    7,
    4,
    ALICE,
    "fixed",
    datetime(2026, 11, 28, tzinfo=UTC),
    "c4",
    reply_to=ReplyQuote(1, User(2, "bob", "Bob"), "the start"),
    edited_at=datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC),
    reactions=(Reaction("👍🏽", (2, 1)), Reaction("🦀", (1,))),
    change_seq=9,
)


def test_a_changed_message_is_a_message_changed_frame_encoded_as_generated() -> None:
    encoder = FrameEncoder()
    changed = live.Changed(CHANGED)
    data = encoder.encode(changed)
    assert data == bytes(convert.frame(changed))
    assert encoder.encode(live.Changed(CHANGED)) is data  # once for every stream
    (frame,) = unpack(data)
    assert frame.message_changed is not None and frame.message is None
    assert frame.message_changed.change_seq == 9
    # Beside a new message with the same id, in one batch: both kinds kept.
    got = unpack(encoder.writes([CHANGED, changed])[0])
    assert got[0].message is not None and got[1].message_changed is not None


@pytest.mark.parametrize("sample", [CHANGED, dataclasses.replace(CHANGED, deleted=True, text="")])
def test_upb_encodes_the_conversation_fields_as_generated(sample: Message) -> None:
    assert upb_answers.message_frame(sample) == bytes(convert.frame(sample))
    page = MessagePage(messages=[sample], has_more=True)
    expected = pb.MessagePage(messages=[convert.message(sample)], has_more=True)
    assert upb_answers.page(page) == bytes(expected)
