"""The database engine, chosen by URL (SQLite by default, PostgreSQL when
scaled), with the migrations applied."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration (a test keeps it equal to alembic's head). A database
# already there skips importing alembic, which costs ~0.2 s of start-up.
SCHEMA_HEAD = "0001"
# PostgreSQL advisory lock key ("crab"): processes starting at once on a new
# database (scaled out) migrate one at a time; the later ones find it done.
MIGRATION_LOCK = 0x63726162


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Brings the schema to the newest revision (safe to run every start)."""

    try:
        async with engine.connect() as conn:
            version = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        if version == SCHEMA_HEAD:
            return
    except DBAPIError:
        pass  # a new database: no version table yet

    def upgrade(connection: Connection) -> None:
        from alembic import command

        command.upgrade(_alembic_config(connection), "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held to commit: alembic runs inside this transaction (DDL included).
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        await conn.run_sync(upgrade)


def ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


__all__ = ["create_engine", "ensure_sqlite_dir", "migrate"]
