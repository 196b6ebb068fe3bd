"""Session frames written to the socket as HTTP/2 DATA frames by crab.

Every delivery is a write to one client's stream. grpclib's `send_message`
and h2's `send_data` spend more Python per write than the socket write
itself: an event dispatch, a codec, a BytesIO, awaited checks, h2's state
machines and a frame object per message. When nothing needs waiting for
(headers out, connection writable, flow-control window open, nothing of
h2's queued), this writes the frame itself: the 9-byte DATA header, gRPC's
5-byte message prefix, the encoded message. It takes from h2's windows
exactly what h2 would, so h2 and grpclib stay right about the connection.
Otherwise it takes grpclib's own path; so does every write when grpclib or
h2 are not what this expects or the fast paths are switched off (both
decided once, at import: api/internals.py). What it gained is in
BENCHMARKS.md ("What changed them, session 3").

Relies on grpclib 0.4 and h2 4 internals (pinned in pyproject.toml); a
grpcio client reads these frames in tests/integration/test_process.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

from h2.connection import ConnectionState
from h2.stream import StreamState

from crab.core.api.internals import installed

# getattr: if h2 renamed these, the probe turned the fast path off, and
# this module must still import.
_SENDABLE = tuple(getattr(StreamState, name, None) for name in ("OPEN", "HALF_CLOSED_REMOTE"))
_SERVER_OPEN = getattr(ConnectionState, "SERVER_OPEN", None)
_DATA_NO_FLAGS = b"\x00\x00"  # frame type DATA, no flags
_NOT_COMPRESSED = b"\x00"

# Writes by path ("fast" or "grpclib"), for tests and for anyone wondering
# which path runs.
written: Counter[str] = Counter()


class DataWriter:
    """Writes pre-encoded messages to one server stream, in order."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream  # grpclib.server.Stream
        installed.log_once()
        # grpclib.protocol.Stream, when the fast path may run
        self._wire = getattr(stream, "_stream", None) if installed.fast_writes else None

    async def send(self, payload: bytes) -> None:
        if self._now(payload):
            written["fast"] += 1
            return
        written["grpclib"] += 1
        await self._stream.send_message(payload)  # PassThroughCodec: bytes as they are

    def _now(self, payload: bytes) -> bool:
        wire, stream = self._wire, self._stream
        if wire is None or not stream._send_initial_metadata_done:
            return False
        connection = wire.connection
        h2 = wire._h2_connection
        h2_stream = h2.streams.get(wire.id)
        if (
            not connection.write_ready.is_set()
            or h2_stream is None
            or h2_stream.state_machine.state not in _SENDABLE
            or h2.state_machine.state is not _SERVER_OPEN
            or h2._data_to_send  # keep h2's own frames first
        ):
            return False
        size = len(payload) + 5
        if size > min(
            h2.max_outbound_frame_size,
            h2_stream.outbound_flow_control_window,
            h2.outbound_flow_control_window,
        ):
            return False
        h2_stream.outbound_flow_control_window -= size
        h2.outbound_flow_control_window -= size
        wire._transport.write(
            b"".join(
                (
                    size.to_bytes(3, "big"),
                    _DATA_NO_FLAGS,
                    wire.id.to_bytes(4, "big"),
                    _NOT_COMPRESSED,
                    len(payload).to_bytes(4, "big"),
                    payload,
                )
            )
        )
        # grpclib's own bookkeeping, as its send_message does it.
        wire.data_sent += size
        connection.data_sent += size
        connection.data_send_process()
        stream._messages_sent += 1
        connection.messages_sent += 1
        connection.last_message_sent = connection.last_data_sent
        return True
