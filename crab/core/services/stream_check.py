"""What an admin's `crab user` or `crab room delete` did to the database
reaches this process's open streams here, when no event of its broker
carried it (docs/admin.md): every few seconds, two queries for all of
them end the streams whose session is signed out and tell the others of
chats that no longer exist."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from crab.core.clock import now
from crab.core.domain import events as ev
from crab.core.storage import chats
from crab.core.storage import sessions as sessions_store
from crab.core.storage.database import Database
from crab.errors import Unauthenticated

if TYPE_CHECKING:
    from crab.core.services.live import LiveSession

log = logging.getLogger(__name__)

IN_LIST = 500  # ids in one IN (...)


async def check_every(
    interval: float, database: Database, streams: Callable[[], Collection[LiveSession]]
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await check_streams(database, streams())
        except Exception:  # the database away a moment: the next round retries
            log.warning("checking open streams' sessions failed", exc_info=True)


async def check_streams(database: Database, streams: Collection[LiveSession]) -> None:
    live = [s for s in streams if s.error is None]
    session_ids = sorted({s.caller.session_id for s in live})
    chat_ids = sorted({c for s in live for c in s.chats})
    active: set[int] = set()
    existing: set[int] = set()
    for part in _parts(session_ids):
        active |= await database.read(sessions_store.active_among, part, now())
    for part in _parts(chat_ids):
        existing |= await database.read(chats.existing, part)
    for session in live:
        if session.caller.session_id not in active:
            session.end(Unauthenticated("session signed out; sign in again"))
            continue
        for chat_id in sorted(session.chats - existing):
            await session.on_event(ev.ChatLeft(session.caller.user_id, chat_id))


def _parts(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + IN_LIST] for i in range(0, len(ids), IN_LIST)]
