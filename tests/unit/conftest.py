"""A Database on a temp SQLite file: rules are tested with no server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crab.core.storage.database import Database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    made = Database(f"sqlite+aiosqlite:///{tmp_path / 'crab.db'}")
    await made.migrate()
    yield made
    await made.close()
