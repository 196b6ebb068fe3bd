"""The gauges read when Prometheus scrapes instead of kept up to date on
every change: a stream's queue moves with every message, so reading every
queue once a scrape costs far less than counting each push and pop.

Collected on the event loop (metrics_http.py), so the Hub's sessions are
never half-changed while read."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from crab.core.domain.models import CallStatus
from crab.core.services.live import Hub
from crab.core.storage import calls as call_store
from crab.core.storage.database import Database


class HubGauges(Collector):
    """This process's live session streams: how many, what waits in their
    queues, and how many of them are in a call."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sessions = self._hub.sessions()
        queued = [s.queued for s in sessions]
        yield GaugeMetricFamily(
            "crab_sessions_connected", "Live session streams open on this server.", len(sessions)
        )
        yield GaugeMetricFamily(
            "crab_session_queue_items",
            "Items (messages, events, answers) waiting in all session streams' queues.",
            sum(queued),
        )
        yield GaugeMetricFamily(
            "crab_session_queue_max_items",
            "Items waiting in the fullest session stream's queue (it ends at --stream-buffer).",
            max(queued, default=0),
        )
        yield GaugeMetricFamily(
            "crab_call_participants",
            "Session streams of this server that are in a call.",
            sum(len(s.calls) for s in sessions),
        )


class CallGauges(Collector):
    """Calls going on, from the database (so every replica tells the same
    number: take max, not sum, across replicas); read before each scrape."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._counts: dict[CallStatus, int] = {}

    async def refresh(self) -> None:
        self._counts = await self._database.read(call_store.in_progress)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "crab_calls_in_progress",
            "Calls not yet ended, by status (ringing, active), in the whole deployment.",
            labels=["status"],
        )
        for status in (CallStatus.RINGING, CallStatus.ACTIVE):
            family.add_metric([status.name.lower()], self._counts.get(status, 0))
        yield family
