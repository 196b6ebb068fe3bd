"""The one table from crab's errors to gRPC statuses, and the guard that
applies it to every handler: no exception reaches the wire as UNKNOWN."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from grpclib import GRPCError
from grpclib.const import Handler, Status

from crab import errors
from crab.core.storage.failures import as_crab_error

log = logging.getLogger(__name__)

STATUS: dict[type[errors.CrabError], Status] = {
    errors.Unauthenticated: Status.UNAUTHENTICATED,
    errors.PermissionDenied: Status.PERMISSION_DENIED,
    errors.NotFound: Status.NOT_FOUND,
    errors.InvalidArgument: Status.INVALID_ARGUMENT,
    errors.AlreadyExists: Status.ALREADY_EXISTS,
    errors.FailedPrecondition: Status.FAILED_PRECONDITION,
    errors.Conflict: Status.ABORTED,
    errors.ResourceExhausted: Status.RESOURCE_EXHAUSTED,
    errors.Unavailable: Status.UNAVAILABLE,
}


def to_grpc(error: errors.CrabError) -> GRPCError:
    # The nearest class in the table: DiskFull answers as ResourceExhausted.
    found = next((STATUS[c] for c in type(error).__mro__ if c in STATUS), Status.INTERNAL)
    return GRPCError(found, error.message)


def unexpected(exc: Exception, where: str) -> GRPCError:
    """What the caller hears of an exception no handler expected: a database
    outage or a full disk as such (logged as one rate-limited line), else a
    bug, INTERNAL, with its traceback in the log."""
    error = as_crab_error(exc)
    if error is not None:
        return to_grpc(error)
    log.error("unexpected error in %s", where, exc_info=exc)
    return GRPCError(Status.INTERNAL, "internal server error")


class Calls:
    """Counts calls in progress, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def guard(func: Callable[[Any], Awaitable[None]], calls: Calls) -> Callable[[Any], Awaitable[None]]:
    @functools.wraps(func)
    async def guarded(stream: Any) -> None:
        calls.enter()
        try:
            await func(stream)
        except errors.CrabError as error:
            raise to_grpc(error) from None
        except GRPCError:
            raise
        except Exception as exc:
            raise unexpected(exc, getattr(func, "__name__", "a handler")) from None
        finally:
            calls.leave()

    return guarded


class Guarded:
    """Wraps a servicer so each of its methods goes through `guard`."""

    def __init__(self, servable: Any, calls: Calls) -> None:
        self._servable = servable
        self._calls = calls

    def __mapping__(self) -> dict[str, Handler]:
        return {
            name: handler._replace(func=guard(handler.func, self._calls))
            for name, handler in self._servable.__mapping__().items()
        }
