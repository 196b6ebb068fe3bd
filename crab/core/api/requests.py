"""Reading requests from strangers: a size checked from the gRPC length
prefix before any byte of the body is buffered, and bodies checked by the C
protobuf runtime (upb) before betterproto2 sees them.

betterproto2 keeps unknown fields by appending bytes (quadratic: a 1 MB
request of tiny unknown fields took 14 s of a core), lets a field of the
wrong wire type through as the wrong Python type (bytes where an int
belongs, which then reached the worker), and fails on bad UTF-8 with a
traceback. upb parses in linear time and refuses what does not decode; it
keeps the last member of a oneof and drops fields of the wrong wire type
into the unknown set, which we discard before re-encoding the clean
message for betterproto2 (a few microseconds for the small messages the
API takes)."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable
from functools import cache
from typing import Any

import betterproto2
import grpclib.server
from google.protobuf.message import DecodeError
from grpclib import GRPCError
from grpclib.const import Status

from crab.core.api.frame_encoder import PassThroughCodec
from crab.core.api.internals import installed
from crab.core.logs import Throttled
from crab.proto.upb import message_class

log = logging.getLogger(__name__)
_PREFIX = struct.Struct(">?I")  # compressed flag, body length


class RequestCodec(PassThroughCodec):
    """PassThroughCodec's replies; requests at most `max_bytes` and upb-checked."""

    def __init__(self, max_bytes: int, read_timeout: float) -> None:
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self._bad = Throttled(log, "requests that do not decode")

    def decode(self, data: bytes, message_type: Any) -> Any:
        if not (isinstance(message_type, type) and issubclass(message_type, betterproto2.Message)):
            return super().decode(data, message_type)  # health, reflection: protobuf's own
        checked = _upb_class(message_type.__name__)()
        try:
            checked.ParseFromString(data)
        except DecodeError:
            self._bad.log(
                logging.INFO, "a crab.v1.%s of %d bytes", message_type.__name__, len(data)
            )
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                f"the request is not a valid crab.v1.{message_type.__name__}",
            ) from None
        checked.DiscardUnknownFields()
        return message_type.parse(checked.SerializeToString())


@cache
def _upb_class(name: str) -> Any:
    return message_class(name)


async def _recv_message(stream: Any, codec: Any, message_type: Any) -> Any:
    """grpclib's recv_message, refusing a body before reading it when its
    declared length is over the codec's limit, and a body (or a call's first
    message) that trickles in: a call held open by a half-sent request costs
    a task and its buffers for as long as the client likes."""
    timeout = getattr(codec, "read_timeout", None)
    if getattr(stream, "crab_started", False):
        meta = await stream.recv_data(5)  # a stream's next frame may take its time
    else:
        stream.crab_started = True
        meta = await _within(timeout, stream.recv_data(5))
    if not meta:
        return None
    if len(meta) < 5:
        raise GRPCError(Status.INVALID_ARGUMENT, "truncated gRPC message prefix")
    compressed, length = _PREFIX.unpack(meta)
    if compressed:
        raise GRPCError(Status.UNIMPLEMENTED, "compressed requests are not supported")
    limit = getattr(codec, "max_bytes", None)
    if limit is not None and length > limit:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED,
            f"the request is {length} bytes; this server takes at most {limit}",
        )
    body = await _within(timeout, stream.recv_data(length))
    if len(body) != length:
        raise GRPCError(Status.INVALID_ARGUMENT, "the request ended before its declared length")
    return codec.decode(body, message_type)


async def _within(seconds: float | None, reading: Awaitable[bytes]) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            return await reading
    except TimeoutError:
        raise GRPCError(Status.DEADLINE_EXCEEDED, "the request did not arrive in time") from None


def install_size_check() -> None:
    """grpclib reads whatever length a client declares (up to 4 GiB) before
    any codec runs; its server streams call this module-level function
    (checked at import: api/internals.py; a safety feature, never off)."""
    installed.require_safety()
    setattr(grpclib.server, "recv_message", _recv_message)  # noqa: B010
