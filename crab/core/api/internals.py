"""Every place crab leans on grpclib's or h2's private internals, and the
switch that turns the fast paths off. Each internal is checked once, here,
at import, against the grpclib and h2 actually installed (pinned in
pyproject.toml), on small real objects built the way grpclib builds them.

Fast paths (speed only: the client gets the same bytes either way). Each
runs only when every internal it needs is there and `CRAB_FAST_PATHS` is
not `0`; otherwise grpclib's own path runs, and the reason is logged once.

- `fast DATA writes` (api/fast_writes.py): a session frame written to the
  socket as an HTTP/2 DATA frame by crab, taking from h2's flow-control
  windows what h2 would, instead of grpclib's send_message + h2's send_data.

Safety (the edge's limits; never switched off). When an internal is
missing the server refuses to start and says which: a server without its
limits would be open to the attacks they stop.

- `request size check` (api/requests.py): grpclib.server.recv_message is
  replaced, so a request's declared length is checked before it is read.
- `connection limits` (api/connections.py, api/server.py, api/auth.py):
  EdgeProtocol wraps grpclib's H2Protocol (its h2 connection, its event
  processors), CrabServer makes its protocols and owns its listener
  (grpclib's Server fields), the auth listener finds a call's connection
  by the peer's transport.

Public surfaces used for speed (upb encoding in api/upb_answers.py, one
encoding per frame for every stream in api/frame_encoder.py) touch no
internals and stay on."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

FAST_PATHS_ENV = "CRAB_FAST_PATHS"


def _fast_paths_allowed() -> bool:
    return os.environ.get(FAST_PATHS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _NullTransport:
    """What grpclib's objects need of a transport while being probed."""

    def write(self, data: bytes) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False


def _missing(obj: Any, where: str, names: dict[str, Callable[[Any], bool]]) -> list[str]:
    """The names `obj` lacks, or has with an unexpected kind of value."""
    out = []
    for name, fits in names.items():
        if not hasattr(obj, name):
            out.append(f"{where}.{name} is gone")
        elif not fits(getattr(obj, name)):
            out.append(f"{where}.{name} is {type(getattr(obj, name)).__name__}")
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _any(value: Any) -> bool:
    return True


def _probe_fast_writes() -> list[str]:
    """An h2 server connection with one open stream (opened by an h2
    client), and grpclib's connection, stream and server stream over it."""
    import asyncio

    import grpclib.protocol
    import grpclib.server
    from grpclib.config import Configuration
    from grpclib.const import Cardinality
    from grpclib.encoding.proto import ProtoCodec
    from h2.config import H2Configuration
    from h2.connection import ConnectionState, H2Connection
    from h2.stream import StreamState

    problems: list[str] = []
    for enum, names in (
        (StreamState, ("OPEN", "HALF_CLOSED_REMOTE")),
        (ConnectionState, ("SERVER_OPEN",)),
    ):
        problems += [f"h2 {enum.__name__}.{n} is gone" for n in names if not hasattr(enum, n)]
    client = H2Connection(H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1, [(":method", "POST"), (":scheme", "http"), (":path", "/p"), (":authority", "x")]
    )
    h2 = H2Connection(H2Configuration(client_side=False))
    h2.initiate_connection()
    h2.receive_data(client.data_to_send())
    problems += _missing(
        h2,
        "h2 H2Connection",
        {
            "streams": lambda v: isinstance(v, dict) and 1 in v,
            "state_machine": lambda v: getattr(v, "state", None) is ConnectionState.SERVER_OPEN,
            "_data_to_send": lambda v: isinstance(v, bytes | bytearray),
            "max_outbound_frame_size": _is_int,
            "outbound_flow_control_window": _is_int,
        },
    )
    if problems:
        return problems
    problems += _missing(
        h2.streams[1],
        "h2 H2Stream",
        {
            "state_machine": lambda v: getattr(v, "state", None) is StreamState.OPEN,
            "outbound_flow_control_window": _is_int,
        },
    )
    transport: Any = _NullTransport()
    connection = grpclib.protocol.Connection(h2, transport, config=Configuration().__for_server__())
    problems += _missing(
        connection,
        "grpclib Connection",
        {
            "write_ready": lambda v: isinstance(v, asyncio.Event),
            "data_sent": _is_int,
            "data_send_process": callable,
            "messages_sent": _is_int,
            "last_message_sent": _any,
            "last_data_sent": _any,
        },
    )
    wire = connection.create_stream(stream_id=1)
    problems += _missing(
        wire,
        "grpclib protocol.Stream",
        {
            "connection": lambda v: v is connection,
            "_h2_connection": lambda v: v is h2,
            "_transport": lambda v: v is transport,
            "id": lambda v: v == 1,
            "data_sent": _is_int,
        },
    )
    stream = grpclib.server.Stream(
        wire,
        "/p",
        Cardinality.STREAM_STREAM,
        bytes,
        bytes,
        codec=ProtoCodec(),
        status_details_codec=None,
        dispatch=None,  # type: ignore[arg-type]
    )
    problems += _missing(
        stream,
        "grpclib server.Stream",
        {
            "_stream": lambda v: v is wire,
            "_send_initial_metadata_done": lambda v: v is False,
            "_messages_sent": _is_int,
            "send_message": callable,
        },
    )
    return problems


def _probe_size_check() -> list[str]:
    import grpclib.protocol
    import grpclib.server

    problems = []
    if not callable(getattr(grpclib.server, "recv_message", None)):
        problems.append("grpclib.server.recv_message is gone")
    method = getattr(grpclib.server.Stream, "recv_message", None)
    code = getattr(method, "__code__", None)
    if code is None or "recv_message" not in code.co_names:
        problems.append("grpclib server.Stream.recv_message no longer calls the module's")
    if not callable(getattr(grpclib.protocol.Stream, "recv_data", None)):
        problems.append("grpclib protocol.Stream.recv_data is gone")
    return problems


def _probe_connection_limits() -> list[str]:
    import grpclib.protocol
    import grpclib.server
    from grpclib.config import Configuration
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import (
        PingReceived,
        PriorityUpdated,
        RemoteSettingsChanged,
        RequestReceived,
        StreamReset,
    )

    problems = _missing(
        grpclib.server.Server,
        "grpclib Server",
        {
            "_protocol_factory": callable,
            "__gc_step__": callable,
            "close": callable,
            "wait_closed": callable,
        },
    )
    problems += _missing(
        grpclib.protocol.H2Protocol,
        "grpclib H2Protocol",
        {"connection_made": callable, "data_received": callable, "connection_lost": callable},
    )
    transport: Any = _NullTransport()
    h2 = H2Connection(H2Configuration(client_side=False))
    connection = grpclib.protocol.Connection(h2, transport, config=Configuration().__for_server__())
    problems += _missing(
        connection,
        "grpclib Connection",
        {"_connection": lambda v: v is h2, "flush": callable},
    )
    processor = grpclib.protocol.EventsProcessor(None, connection)  # type: ignore[arg-type]
    kinds = (PingReceived, StreamReset, RemoteSettingsChanged, PriorityUpdated, RequestReceived)
    problems += _missing(
        processor,
        "grpclib EventsProcessor",
        {
            "processors": lambda v: isinstance(v, dict) and all(k in v for k in kinds),
            "streams": lambda v: isinstance(v, dict),
            "close": callable,
        },
    )
    problems += _missing(
        grpclib.protocol.Peer(transport), "grpclib Peer", {"_transport": lambda v: v is transport}
    )
    return problems


# Fields of a grpclib Server that CrabServer reads or sets; only an instance
# has them (see check_server).
SERVER_FIELDS = (
    "_mapping",
    "_codec",
    "_status_details_codec",
    "__dispatch__",
    "_handlers",
    "_config",
    "_h2_config",
    "_loop",
    "_server",
    "_server_closed_fut",
)


def _probe(probe: Callable[[], list[str]]) -> list[str]:
    try:
        return probe()
    except Exception as exc:  # any change may break the probe itself
        return [f"the probe failed: {type(exc).__name__}: {exc}"]


class Internals:
    """What the installed grpclib and h2 allow; built once, at import."""

    def __init__(self) -> None:
        self.fast_paths_allowed = _fast_paths_allowed()
        self.fast_writes_problems = _probe(_probe_fast_writes)
        self.size_check_problems = _probe(_probe_size_check)
        self.connection_limits_problems = _probe(_probe_connection_limits)
        self.fast_writes = self.fast_paths_allowed and not self.fast_writes_problems
        self._logged = False

    def log_once(self) -> None:
        """Says, once per process, which fast paths are off and why."""
        if self._logged:
            return
        self._logged = True
        if not self.fast_paths_allowed:
            log.info("fast paths off (%s=0): session frames go through grpclib", FAST_PATHS_ENV)
        elif self.fast_writes_problems:
            log.warning(
                "fast DATA writes off, grpclib or h2 is not what crab expects (%s): "
                "session frames go through grpclib",
                "; ".join(self.fast_writes_problems),
            )

    def require_safety(self) -> None:
        """Raises unless the edge's limits can be installed."""
        problems = self.size_check_problems + self.connection_limits_problems
        if problems:
            raise RuntimeError(
                "grpclib or h2 changed; crab's request and connection limits cannot be "
                "installed: " + "; ".join(problems)
            )


def check_server(server: Any) -> None:
    """A CrabServer's grpclib fields, once it exists (a Server needs a loop)."""
    missing = [name for name in SERVER_FIELDS if not hasattr(server, name)]
    if missing:
        raise RuntimeError(
            "grpclib changed; crab's connection limits cannot be installed: grpclib Server."
            + ", grpclib Server.".join(missing)
            + " gone"
        )


installed = Internals()
