"""gRPC calls by method and status, from two grpclib server events: the
method is noted when a request arrives (RecvRequest, before the auth
listener, so calls it refuses are counted too) and counted with the status
the trailers carry (SendTrailingMetadata). Both run in the call's own
task, so a ContextVar carries the method from one to the other. Methods
are the server's fixed set (an unknown one never reaches RecvRequest)."""

from __future__ import annotations

from contextvars import ContextVar

from grpclib.events import RecvRequest, SendTrailingMetadata, listen
from grpclib.server import Server

from crab.core import metrics

_method: ContextVar[str] = ContextVar("crab_metrics_method", default="unknown")


async def _noted(event: RecvRequest) -> None:
    _method.set(event.method_name)


async def _counted(event: SendTrailingMetadata) -> None:
    metrics.GRPC_REQUESTS.labels(_method.get(), event.status.name).inc()


def count_calls(server: Server) -> None:
    """Listens on `server`; call before any other RecvRequest listener."""
    listen(server, RecvRequest, _noted)
    listen(server, SendTrailingMetadata, _counted)
