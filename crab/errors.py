"""crab's error tree. The domain raises these; the API edge maps each to
one gRPC status (crab/core/api/errors.py), so nothing reaches the wire as
UNKNOWN.

    CrabError
    ├── Unauthenticated       no, bad, expired or revoked credentials
    ├── PermissionDenied      signed in, but not allowed (closed sign-up, ...)
    ├── NotFound              unknown id, or a chat the caller is not in
    ├── InvalidArgument       bad input: empty text, bad username, ...
    ├── AlreadyExists         taken username, already a member, second invite
    ├── FailedPrecondition    the state does not allow it (not your invite)
    ├── Conflict              a competing write stored the same key first
    ├── ResourceExhausted     rate limit, full buffers
    │   └── DiskFull          the server's disk is full (SQLite cannot write)
    └── Unavailable           shutting down, broker gone: retry later
        └── DatabaseUnavailable   the database cannot be reached now
"""

from __future__ import annotations


class CrabError(Exception):
    """Base of every expected failure. `code` is a stable name for clients."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(CrabError):
    code = "UNAUTHENTICATED"


class PermissionDenied(CrabError):
    code = "PERMISSION_DENIED"


class NotFound(CrabError):
    code = "NOT_FOUND"


class InvalidArgument(CrabError):
    code = "INVALID_ARGUMENT"


class AlreadyExists(CrabError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(CrabError):
    code = "FAILED_PRECONDITION"


class Conflict(CrabError):
    """A write met a unique key a competing writer had just stored (the
    database's IntegrityError, raised by storage/database.py). The worker
    tries such a command once more; one still conflicting is its failure.
    Never crosses the broker, so it has no entry in ERRORS_BY_CODE."""

    code = "ABORTED"


class ResourceExhausted(CrabError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(CrabError):
    code = "UNAVAILABLE"


class DiskFull(ResourceExhausted):
    """Kept apart from other exhaustion: nothing is stored until space returns."""


class DatabaseUnavailable(Unavailable):
    """An outage, not a bug: the worker retries a command that met it."""


ERRORS_BY_CODE: dict[str, type[CrabError]] = {
    cls.code: cls
    for cls in (
        Unauthenticated,
        PermissionDenied,
        NotFound,
        InvalidArgument,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
    )
}


def error_from_code(code: str, message: str) -> CrabError:
    """Rebuilds an error that crossed the broker as (code, message)."""
    return ERRORS_BY_CODE.get(code, CrabError)(message)
