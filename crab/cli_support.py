"""What every `crab` command that opens the database shares: the storage
options, the settings they make, and how a command runs its coroutine."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from crab.config import Settings, default_data_dir

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop where it is installed (faster sockets). Files
    others could read that crab cannot make private, a database schema it
    does not know (a newer crab's) and a database being restored stop it
    with a message."""
    from crab.core.storage.database import UnknownSchema
    from crab.core.storage.files import UnsafeFiles
    from crab.core.storage.lock import DatabaseInUse

    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            return asyncio.run(main)
        return uvloop.run(main)
    except (UnsafeFiles, UnknownSchema, DatabaseInUse) as error:
        raise click.ClickException(str(error)) from None


def storage_options(func: F) -> F:
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="CRAB_DATA_DIR",
        show_envvar=True,
        help=f"Where the database and signing secret live [default: {default_data_dir()}]",
    )(func)
    func = click.option(
        "--database",
        default=None,
        envvar="CRAB_DATABASE",
        show_envvar=True,
        help="Database URL (sqlite+aiosqlite:///... or postgresql+asyncpg://...)",
    )(func)
    return func


def make_settings(data_dir: Path | None, database: str | None, **kwargs: Any) -> Settings:
    base = Settings() if data_dir is None else Settings(data_dir=data_dir)
    # Replicas share one signing secret; it comes from the environment only
    # (never argv, which every user of the machine can read).
    secret = os.environ.get("CRAB_JWT_SECRET") or None
    return dataclasses.replace(base, database_url=database, jwt_secret=secret, **kwargs)


def broker_option(help: str | None = None) -> Callable[[F], F]:
    """--broker (CRAB_BROKER): memory:// in one process, amqp://... when scaled out."""
    return click.option(
        "--broker",
        "broker_url",
        default="memory://",
        show_default=True,
        envvar="CRAB_BROKER",
        show_envvar=True,
        help=help,
    )
