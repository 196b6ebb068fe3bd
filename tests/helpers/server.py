"""The in-process crab server the tests talk to: its settings (cheap
hashing, a free port, limits lifted) and the shapes of the fixtures that
make its clients and databases (tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

from crab.client.connection import CrabClient
from crab.config import Limits, Rate, Settings
from crab.core.app import Crab

PASSWORD = "correct horse battery"


# Every client of the in-process server comes from 127.0.0.1: one address.
LIFTED: dict[str, object] = {
    "signup_per_address": Rate(100_000, 1),
    "rooms_per_user": Rate(100_000, 1),
    "rooms_per_address": Rate(100_000, 1),
    "invites_per_user": Rate(100_000, 1),
    "invites_per_address": Rate(100_000, 1),
    "renames_per_user": Rate(100_000, 1),
    "topics_per_user": Rate(100_000, 1),
    "removals_per_user": Rate(100_000, 1),
    "display_names_per_user": Rate(100_000, 1),
    "password_changes_per_user": Rate(100_000, 1),
    "changes_per_user": Rate(100_000, 1),
    "mark_reads_per_user": Rate(100_000, 1),
    "calls_per_user": Rate(100_000, 1),
    "call_signals_per_user": Rate(100_000, 1),
    "hash_queue": 1_000,
    "hash_queue_per_address": 1_000,
}


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Test settings: cheap hashing, a free port, and rate limits high enough
    that only the tests about limits meet them (those run `crab serve` with
    its defaults: tests/integration/hostile)."""
    base = Settings(
        data_dir=tmp_path / "data",
        port=0,
        password_hashing="cheap",
        limits=Limits(send_rate=10_000, send_burst=10_000, **LIFTED),
    )
    return dataclasses.replace(base, **overrides)


NewDatabase = Callable[[], Awaitable[str | None]]


ClientFactory = Callable[..., Awaitable[CrabClient]]

# sso_server(oidc={...}, **settings) -> a running crab that trusts the test
# provider ("Test"), its keys refetched at most every SSO_REFETCH_GAP s.
SsoServer = Callable[..., Awaitable[Crab]]
SSO_REFETCH_GAP = 0.3  # seconds; the server's default is 5
