"""The answers that carry messages in bulk (each fan-out frame, each send's
acknowledgement, history pages of 50) encoded with the C protobuf runtime
(upb): betterproto2 encodes in Python, an order of magnitude slower for a
page, and upb writes the same bytes (tests/unit/test_frames.py pins them; the
figures are in BENCHMARKS.md, session 2). The rest of the API keeps the
generated betterproto2 classes (convert.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crab.core.domain.models import CALL_NOTE_PREFIX, Message, MessagePage
from crab.core.services import live
from crab.proto.upb import message_class

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ServerFrame = message_class("ServerFrame")
_MessagePage = message_class("MessagePage")


def _fill(out: Any, m: Message) -> None:
    out.chat_id = m.chat_id
    out.id = m.id
    sender = out.sender
    sender.id = m.sender.id
    sender.username = m.sender.username
    sender.display_name = m.sender.display_name
    out.text = m.text
    # Timestamp.FromDatetime is pure Python and a visible share of a history page.
    since = m.sent_at - _EPOCH  # aware: any zone counts from the UTC epoch
    out.sent_at.seconds = since.days * 86_400 + since.seconds
    out.sent_at.nanos = since.microseconds * 1000
    out.client_message_id = m.client_message_id
    # The conversation's fields: unset (and not encoded) for a plain message.
    if m.reply_to is not None:
        q = m.reply_to
        out.reply_to_id = q.message_id
        out.reply_to.message_id = q.message_id
        out.reply_to.sender.id = q.sender.id
        out.reply_to.sender.username = q.sender.username
        out.reply_to.sender.display_name = q.sender.display_name
        out.reply_to.text_start = q.text_start
        out.reply_to.deleted = q.deleted
    if m.edited_at is not None:
        since = m.edited_at - _EPOCH
        out.edited_at.seconds = since.days * 86_400 + since.seconds
        out.edited_at.nanos = since.microseconds * 1000
    if m.deleted:
        out.deleted = True
    for r in m.reactions:
        added = out.reactions.add()
        added.emoji = r.emoji
        added.user_ids.extend(r.user_ids)
    if m.mention_user_ids:
        out.mention_user_ids.extend(m.mention_user_ids)
    if m.mentions_room:
        out.mentions_room = True
    if m.change_seq:
        out.change_seq = m.change_seq
    if m.client_message_id.startswith(CALL_NOTE_PREFIX):
        out.call_note = True


def message_frame(m: Message) -> bytes:
    frame = _ServerFrame()
    _fill(frame.message, m)
    return bytes(frame.SerializeToString())


def changed_frame(m: Message) -> bytes:
    frame = _ServerFrame()
    _fill(frame.message_changed, m)
    return bytes(frame.SerializeToString())


def ack_frame(ack: live.Ack) -> bytes:
    frame = _ServerFrame()
    frame.ack.client_message_id = ack.client_message_id
    _fill(frame.ack.message, ack.message)
    return bytes(frame.SerializeToString())


def page(p: MessagePage) -> bytes:
    out = _MessagePage(has_more=p.has_more)
    for m in p.messages:
        _fill(out.messages.add(), m)
    return bytes(out.SerializeToString())
