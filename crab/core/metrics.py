"""Every Prometheus metric crab keeps, in one place (docs/metrics.md).

Counters and histograms are module-level objects of prometheus_client's
default registry: the code that counts imports this module and counts; a
process without `--metrics` counts too (an increment is cheap) but nobody
reads them. What is cheaper to read than to count (sessions connected,
queue depths, calls going on) is read when scraped, by the collectors
metrics_http.py registers for the process's role.

Labels only from small fixed sets (an operation, a gRPC status, a command
kind, a method of crab's API): never a user, a chat or an address, which
would grow without bound and tell who talks to whom.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# No `_created` series beside each counter: they double the output, and
# Prometheus sees restarts in the counters themselves.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Latency buckets from a tenth of a millisecond (an acknowledgement on an
# idle laptop) to ten seconds (a database or broker outage's retries).
SECONDS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class LoopCounter(Collector):
    """A counter only the event loop's thread adds to, for the hottest
    paths: a plain int (prometheus_client's inc takes a lock, ~0.5 us),
    read when scraped (on the loop too: metrics_http.py)."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self._documentation = documentation
        self.value = 0
        REGISTRY.register(self)

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self._documentation, value=self.value)


# ---- messages ------------------------------------------------------------

MESSAGES_STORED = Counter(
    "crab_messages_stored",
    "Messages the worker stored (a send repeated after a lost answer counts once more).",
)
MESSAGES_DELIVERED = LoopCounter(
    "crab_messages_delivered",
    "Messages written to live session streams (one per member that got it).",
)
SENDS = Counter(
    "crab_sends",
    "Sends on session streams by their answer: OK (acknowledged) or the error's status.",
    ["status"],
)
SENDS_OK = SENDS.labels("OK")  # bound once: the hot path skips the label lookup
ACK_LATENCY = Histogram(
    "crab_ack_latency_seconds",
    "From a send read off a session stream to its acknowledgement queued for the client.",
    buckets=SECONDS,
)

# ---- session streams -----------------------------------------------------

SESSION_OVERFLOWS = Counter(
    "crab_session_overflows",
    "Session streams ended because their client fell behind and the queue filled up.",
)

# ---- storage and broker --------------------------------------------------

DATABASE_SECONDS = Histogram(
    "crab_database_seconds",
    "Database units of work, by operation (read, write), waiting for a turn included.",
    ["operation"],
    buckets=SECONDS,
)
DATABASE_ERRORS = Counter(
    "crab_database_errors",
    "Database units of work that raised, by operation and kind (conflict, other).",
    ["operation", "kind"],
)
BROKER_SECONDS = Histogram(
    "crab_broker_seconds",
    "Broker operations: publish (an event) and request (a command and its answer, "
    "the worker's handling included).",
    ["operation"],
    buckets=SECONDS,
)
BROKER_ERRORS = Counter(
    "crab_broker_errors",
    "Broker operations that raised, by operation (publish, request) and status.",
    ["operation", "status"],
)

# ---- the worker ----------------------------------------------------------

COMMANDS = Counter(
    "crab_commands",
    "Commands the worker handled, by kind (SendMessage, CreateRoom, ...) and outcome status.",
    ["command", "status"],
)

# ---- accounts ------------------------------------------------------------

SIGN_INS = Counter(
    "crab_sign_ins",
    "Sign-ins by method (password, provider) and status (OK, UNAUTHENTICATED, "
    "RESOURCE_EXHAUSTED, ...).",
    ["method", "status"],
)
SIGN_IN_THROTTLED = Counter(
    "crab_sign_ins_throttled",
    "Sign-ins refused before any check because their account and address, or "
    "address, is backing off after failures.",
    ["method"],
)

# ---- the gRPC API ----------------------------------------------------------

GRPC_REQUESTS = Counter(
    "crab_grpc_requests",
    "Calls of crab's gRPC API finished, by method and status.",
    ["method", "status"],
)


# Series that exist from the start (at 0), so a dashboard and an alert see
# them before the first failure.
for _operation in ("read", "write"):
    for _kind in ("conflict", "unavailable", "disk_full", "other"):
        DATABASE_ERRORS.labels(_operation, _kind)
for _operation in ("publish", "request"):
    BROKER_ERRORS.labels(_operation, "UNAVAILABLE")
for _method in ("password", "provider"):
    SIGN_INS.labels(_method, "OK")
    SIGN_INS.labels(_method, "UNAUTHENTICATED")
    SIGN_IN_THROTTLED.labels(_method)


def status_of(error: BaseException) -> str:
    """A label for an error: a CrabError's code (its gRPC status), else INTERNAL."""
    return str(getattr(error, "code", "INTERNAL"))


def count_commands(outcomes: Tally[tuple[str, str]]) -> None:
    """A batch's commands, one increment per (kind, status) instead of one each."""
    for (command, status), count in outcomes.items():
        COMMANDS.labels(command, status).inc(count)
