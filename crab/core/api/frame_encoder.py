"""Session frames as bytes: each message is encoded once for every stream
that carries it (an encode costs far more than writing the same bytes
again), and frames queued for one stream go out together as one FrameBatch
(one HTTP/2 write)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from grpclib.encoding.proto import ProtoCodec

from crab.core.api import convert, upb_answers
from crab.core.domain.models import Message
from crab.core.services import live

BATCH_BYTES = 256 * 1024  # well under the 4 MiB a gRPC client accepts by default
# Recent batches of messages, shared by the streams that get them (small
# ones only: at most 256 x 64 KiB held).
BATCH_CACHE = 256
BATCH_CACHE_BYTES = 64 * 1024
_FRAMES_TAG = b"\x0a"  # FrameBatch.frames = 1, length-delimited
_BATCH_TAG = b"\x5a"  # ServerFrame.batch = 11, length-delimited


class PassThroughCodec(ProtoCodec):
    """grpclib's codec, except that bytes are already an encoded message."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        return super().encode(message, message_type)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class FrameEncoder:
    """One per server, shared by every stream: a fan-out message is encoded
    by the first stream that sends it and reused by the others; so is a
    whole batch of messages (most members of a room get the same batch)."""

    def __init__(self, cache_size: int = 4096) -> None:
        # (chat id, message id) -> (the frame, the frame as a FrameBatch entry)
        self._messages: OrderedDict[tuple[int, int, int], tuple[bytes, bytes]] = OrderedDict()
        self._batches: OrderedDict[tuple[tuple[int, int, int], ...], list[bytes]] = OrderedDict()
        self._cache_size = cache_size
        # The same for changed messages (message_changed frames), by change_seq.
        self._changed: OrderedDict[tuple[int, int, int], tuple[bytes, bytes]] = OrderedDict()

    def _message(self, item: Message) -> tuple[bytes, bytes]:
        key = (item.chat_id, item.id, item.change_seq)  # a changed message is a new frame
        found = self._messages.get(key)
        if found is None:
            frame = upb_answers.message_frame(item)
            found = self._messages[key] = (frame, _batch_entry(frame))
            if len(self._messages) > self._cache_size:
                self._messages.popitem(last=False)
        return found

    def _changed_message(self, item: live.Changed) -> tuple[bytes, bytes]:
        m = item.message
        key = (m.chat_id, m.id, m.change_seq)
        found = self._changed.get(key)
        if found is None:
            frame = upb_answers.changed_frame(m)
            found = self._changed[key] = (frame, _batch_entry(frame))
            if len(self._changed) > self._cache_size:
                self._changed.popitem(last=False)
        return found

    def encode(self, item: live.Outgoing) -> bytes:
        if isinstance(item, Message):
            return self._message(item)[0]
        if isinstance(item, live.Changed):
            return self._changed_message(item)[0]
        if isinstance(item, live.Ack):
            return upb_answers.ack_frame(item)
        return bytes(convert.frame(item))

    def _entry(self, item: live.Outgoing) -> bytes:
        if isinstance(item, Message):
            return self._message(item)[1]
        if isinstance(item, live.Changed):
            return self._changed_message(item)[1]
        return _batch_entry(self.encode(item))

    def writes(self, items: Sequence[live.Outgoing]) -> list[bytes]:
        """The encoded writes for a batch of items: a lone frame as itself,
        several as FrameBatch messages of at most BATCH_BYTES."""
        if len(items) == 1:
            return [self.encode(items[0])]
        key: tuple[tuple[int, int, int], ...] | None = None
        messages = [item for item in items if isinstance(item, Message)]
        if len(messages) == len(items):  # only messages: other streams get the same
            key = tuple((m.chat_id, m.id, m.change_seq) for m in messages)
            found = self._batches.get(key)
            if found is not None:
                return found
        out: list[bytes] = []
        chunk: list[bytes] = []
        size = 0
        for item in items:
            part = self._entry(item)
            if chunk and size + len(part) > BATCH_BYTES:
                out.append(_batch(chunk, size))
                chunk, size = [], 0
            chunk.append(part)
            size += len(part)
        if chunk:
            out.append(_batch(chunk, size))
        if key is not None and size <= BATCH_CACHE_BYTES:
            self._batches[key] = out
            if len(self._batches) > BATCH_CACHE:
                self._batches.popitem(last=False)
        return out


def _batch_entry(frame: bytes) -> bytes:
    return _FRAMES_TAG + _varint(len(frame)) + frame


def _batch(parts: list[bytes], size: int) -> bytes:
    return _BATCH_TAG + _varint(size) + b"".join(parts)
