"""`crab tail [CHAT...]`: the last N messages of each chat, then new ones as
they come, as text or JSON lines (crab/scripting/records.py), until Ctrl-C.

No gap, no duplicate: per chat, the id of the last message printed is the
cursor. A reconnect resumes from the cursors (the server replays what was
missed), anything at or below a cursor is dropped, and a jump past the
next id is filled from history before the message is printed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import click
from grpclib import GRPCError
from grpclib.const import Status

from crab.proto.crab import v1 as pb
from crab.scripting import records
from crab.scripting.common import (
    CONNECTION_LOST,
    Target,
    exit_when_stdout_closes,
    signed_in,
    write_line,
)
from crab.scripting.lookup import find_chat
from crab.tui.account import Account

PAGE = 200  # the server's largest history page


class Tail:
    def __init__(self, account: Account, as_json: bool, follow_new: bool) -> None:
        self.account = account
        self.as_json = as_json
        self.follow_new = follow_new  # no CHAT given: chats joined later too
        self.names: dict[int, str] = {}  # followed chat id -> its name
        self.cursors: dict[int, int] = {}  # chat id -> last message id printed

    def follow(self, chat: pb.Chat, cursor: int) -> None:
        self.names[chat.id] = records.chat_name(chat)
        self.cursors[chat.id] = cursor

    def print(self, message: pb.Message, changed: bool = False) -> None:
        name = self.names.get(message.chat_id, str(message.chat_id))
        if self.as_json:
            record = records.message(message, name)
            if changed:
                record["changed"] = True
            write_line(json.dumps(record, ensure_ascii=False))
        else:
            prefix = "(changed) " if changed else ""
            write_line(prefix + records.message_line(message, name))

    async def older(self, chat_id: int, count: int, before_id: int = 0) -> list[pb.Message]:
        """Up to `count` messages before `before_id` (0: the newest), oldest first."""
        found: list[pb.Message] = []
        client = self.account.client
        while len(found) < count:
            limit = min(PAGE, count - len(found))
            after = before_id

            async def page(after: int = after, limit: int = limit) -> pb.MessagePage:
                return await client.history(chat_id, before_id=after, limit=limit)

            got = await self.account.call(page)
            found.extend(got.messages)
            if not got.has_more or not got.messages:
                break
            before_id = got.messages[-1].id
        return found[::-1]

    async def history(self, count: int) -> None:
        """The last `count` of every followed chat, merged by time."""
        shown: list[pb.Message] = []
        for chat_id in list(self.names):
            if count > 0:
                shown.extend(await self.older(chat_id, count))
        shown.sort(key=lambda m: (m.sent_at is None, m.sent_at, m.chat_id, m.id))
        for message in shown:
            self.cursors[message.chat_id] = max(self.cursors[message.chat_id], message.id)
            self.print(message)

    async def on_message(self, message: pb.Message) -> None:
        cursor = self.cursors.get(message.chat_id)
        if cursor is None or message.id <= cursor:
            return  # not followed, or already printed
        if message.id > cursor + 1:
            # Not expected (the server replays in order): filled, never skipped.
            missed = await self.older(message.chat_id, message.id - cursor - 1, message.id)
            for earlier in missed:
                if earlier.id > self.cursors[message.chat_id]:
                    self.print(earlier)
                    self.cursors[message.chat_id] = earlier.id
        self.print(message)
        self.cursors[message.chat_id] = message.id

    async def on_frame(self, frame: pb.ServerFrame) -> None:
        if frame.message is not None:
            await self.on_message(frame.message)
        elif frame.message_changed is not None:
            changed = frame.message_changed
            if changed.chat_id in self.names and changed.id <= self.cursors[changed.chat_id]:
                self.print(changed, changed=True)
        elif frame.chat_joined is not None and self.follow_new:
            chat = frame.chat_joined
            if chat.id not in self.names:
                self.follow(chat, chat.last_message_id)
        elif frame.chat_left is not None:
            self.names.pop(frame.chat_left.chat_id, None)
            self.cursors.pop(frame.chat_left.chat_id, None)

    async def live(self) -> None:
        """The session stream, resumed from the cursors after every outage."""
        pause = 0.2
        lost = refreshed = False
        while True:
            try:
                async with self.account.client.session(dict(self.cursors)) as stream:
                    refreshed = False
                    if lost:
                        click.echo("crab: reconnected", err=True)
                        lost = False
                    pause = 0.2
                    for frame in stream.backlog:
                        await self.on_frame(frame)
                    while (frame := await stream.recv()) is not None:
                        await self.on_frame(frame)
                continue  # the server ended the stream cleanly: resume
            except GRPCError as error:
                if error.status is Status.UNAUTHENTICATED and not refreshed:
                    await self.account.refresh()  # refused: raised, "signed out"
                    refreshed = True  # once: a fresh token refused again is final
                    continue
                # RESOURCE_EXHAUSTED: this stream fell behind; resume from the cursors.
                if error.status not in (Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED):
                    raise
            except CONNECTION_LOST:
                pass
            if not lost:
                click.echo("crab: connection lost; reconnecting", err=True)
                lost = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


async def tail(target: Target, chats: Sequence[str], as_json: bool, history: int) -> None:
    exit_when_stdout_closes()
    async with signed_in(target) as account:
        mine = await account.call(account.client.my_chats)
        tail = Tail(account, as_json, follow_new=not chats)
        wanted = [find_chat(name, mine) for name in chats] or [
            s.chat for s in mine if s.chat is not None
        ]
        for chat in wanted:
            tail.follow(chat, chat.last_message_id if history <= 0 else 0)
        await tail.history(history)
        await tail.live()
