"""Session frames as bytes: each message is encoded once for every stream
that carries it (betterproto2 takes ~100 us per encode), and frames queued
for one stream go out together as one FrameBatch (one HTTP/2 write)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from grpclib.encoding.proto import ProtoCodec

from crab.core.api import convert, wire
from crab.core.domain.models import Message
from crab.core.services import live

BATCH_BYTES = 256 * 1024  # well under the 4 MiB a gRPC client accepts by default
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
    by the first stream that sends it and reused by the others."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._messages: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, item: live.Outgoing) -> bytes:
        if isinstance(item, Message):
            key = (item.chat_id, item.id)
            found = self._messages.get(key)
            if found is None:
                found = self._messages[key] = wire.message_frame(item)
                if len(self._messages) > self._cache_size:
                    self._messages.popitem(last=False)
            return found
        if isinstance(item, live.Ack):
            return wire.ack_frame(item)
        return bytes(convert.frame(item))

    def writes(self, items: Sequence[live.Outgoing]) -> Iterator[bytes]:
        """The encoded writes for a batch of items: a lone frame as itself,
        several as FrameBatch messages of at most BATCH_BYTES."""
        frames = [self.encode(item) for item in items]
        if len(frames) == 1:
            yield frames[0]
            return
        chunk: list[bytes] = []
        size = 0
        for frame in frames:
            part = _FRAMES_TAG + _varint(len(frame)) + frame
            if chunk and size + len(part) > BATCH_BYTES:
                yield _batch(chunk, size)
                chunk, size = [], 0
            chunk.append(part)
            size += len(part)
        if chunk:
            yield _batch(chunk, size)


def _batch(parts: list[bytes], size: int) -> bytes:
    return _BATCH_TAG + _varint(size) + b"".join(parts)
