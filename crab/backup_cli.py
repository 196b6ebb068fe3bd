"""`crab backup`, `crab restore` and `crab export` (registered on `crab` by
crab/cli.py); the work is done in crab/core/storage/backup.py and
export.py, which know nothing of click."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

import click

from crab.cli_support import make_settings, run, storage_options
from crab.config import Settings


def _reason(error: OSError) -> str:
    return f"{error.strerror or error}: {error.filename}" if error.filename else str(error)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e5 else f"{count} bytes"


@click.command()
@storage_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def backup(data_dir: Path | None, database: str | None, file: Path, force: bool) -> None:
    """Copy the SQLite database to FILE, consistently, while crab runs.

    FILE holds password hashes and every message: it is made readable by
    its owner only. The token-signing secret is not in it. PostgreSQL: use
    pg_dump (see README, Backups)."""
    from crab.core.storage.backup import BackupError
    from crab.core.storage.backup import backup as do_backup

    settings = make_settings(data_dir, database)
    try:
        copied = do_backup(settings.database, file, force)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # a folder not writable, a full disk...
        raise click.ClickException(f"backup failed: {_reason(error)}") from None
    click.echo(
        f"backed up to {copied.path}: schema {copied.schema}, {copied.messages} messages, "
        f"{_size(copied.size)}"
    )


@click.command()
@storage_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database already there (it is kept aside).")
def restore(data_dir: Path | None, database: str | None, file: Path, force: bool) -> None:
    """Put the backup FILE in place as the database of a STOPPED crab.

    Refused while any crab process uses the database. The next `crab serve`
    migrates an older backup to this crab's schema."""
    from crab.core.storage.backup import BackupError
    from crab.core.storage.backup import restore as do_restore
    from crab.core.storage.lock import DatabaseInUse

    settings = make_settings(data_dir, database)
    try:
        copied = do_restore(file, settings.database, force)
    except (BackupError, DatabaseInUse) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"restore failed: {_reason(error)}") from None
    if copied.set_aside is not None:
        click.echo(f"the database that was there is now {copied.set_aside}")
    click.echo(
        f"restored {file} to {copied.path}: schema {copied.schema}, {copied.messages} messages"
    )


@click.command("export")
@storage_options
@click.argument("chat")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["jsonl"]),
    required=True,
    help="jsonl: one JSON object per message, oldest first.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (made readable by its owner only) [default: standard output].",
)
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
def export(
    data_dir: Path | None,
    database: str | None,
    chat: str,
    format_: str,
    output: Path | None,
    force: bool,
) -> None:
    """Write one chat's history; CHAT is a chat id or a room's exact name."""

    if output is None:
        _run_export(data_dir, database, chat, sys.stdout)
        return
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; give another name, or --force to replace it")
    try:  # the owner's alone: it holds the chat's every message
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise click.ClickException(f"cannot write there: {_reason(error)}") from None
    try:
        with open(fd, "w", encoding="utf-8") as out:
            count = _run_export(data_dir, database, chat, out)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    click.echo(f"wrote {count} messages to {output}", err=True)


def _run_export(data_dir: Path | None, database: str | None, chat: str, out: TextIO) -> int:
    return run(_export(make_settings(data_dir, database), chat, out))


async def _export(settings: Settings, chat: str, out: TextIO) -> int:
    from crab.core.app import Crab
    from crab.core.storage.export import ExportError, chat_lines, find_chat

    crab = await Crab.open(settings)
    try:
        try:
            found = await crab.database.read(find_chat, chat)
        except ExportError as error:
            raise click.ClickException(str(error)) from None
        return await _write(chat_lines(crab.database, found.id), out)
    finally:
        await crab.close()


async def _write(lines: AsyncIterator[str], out: TextIO) -> int:
    count = 0
    async for line in lines:
        out.write(line)
        count += 1
    out.flush()
    return count


COMMANDS = (backup, restore, export)

__all__ = ["COMMANDS"]
