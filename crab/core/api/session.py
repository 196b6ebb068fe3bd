"""The session stream: one per client, all live traffic both ways. A reader
takes the client's frames (sends, resumes); a writer drains the client's
LiveSession. A bad send gets a SendError frame; the stream lives on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from crab.core.api import convert
from crab.core.api.auth import caller
from crab.core.api.errors import to_grpc
from crab.core.services import live
from crab.core.services.live import Hub, LiveSession
from crab.core.services.messages import Messages
from crab.errors import CrabError
from crab.proto.crab import v1 as pb

log = logging.getLogger(__name__)

FrameStream = Stream[pb.ClientFrame, pb.ServerFrame]


class SessionServicer:
    def __init__(self, hub: Hub, messages: Messages) -> None:
        self._hub = hub
        self._messages = messages

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/crab.v1.Session/Connect": Handler(
                self.connect, Cardinality.STREAM_STREAM, pb.ClientFrame, pb.ServerFrame
            )
        }

    async def connect(self, stream: FrameStream) -> None:
        who = caller()
        first = await stream.recv_message()
        cursors = _cursors(first.resume) if first is not None and first.resume else []
        session = await self._hub.connect(who, cursors)
        sends: set[asyncio.Task[None]] = set()
        reader = asyncio.create_task(self._read(stream, session, first, sends))
        writer = asyncio.create_task(self._write(stream, session))
        ended: asyncio.Future[Any] = asyncio.ensure_future(session.ended.wait())
        try:
            done, _ = await asyncio.wait(
                {reader, writer, ended}, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done and not session.ended.is_set():
                reader.result()
                # The client is done sending: answer its sends, then finish.
                answered: asyncio.Future[Any] = asyncio.gather(*sends)
                await asyncio.wait({answered, ended}, return_when=asyncio.FIRST_COMPLETED)
                session.finish()
                await asyncio.wait({writer, ended}, return_when=asyncio.FIRST_COMPLETED)
            if session.error is not None:
                # Overflow, sign-out or shutdown: end now, even if the writer is
                # stuck on a client that stopped reading.
                raise to_grpc(session.error)
            await writer
        finally:
            for task in (reader, writer, ended):
                task.cancel()
            for task in (reader, writer, ended):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._hub.disconnect(session)

    async def _read(
        self,
        stream: FrameStream,
        session: LiveSession,
        first: pb.ClientFrame | None,
        sends: set[asyncio.Task[None]],
    ) -> None:
        frame = first
        if frame is not None and frame.resume is not None:
            frame = await stream.recv_message()
        while frame is not None:
            if frame.send is not None:
                self._send(session, frame.send, sends)
            elif frame.resume is not None:
                session.resume(_cursors(frame.resume))
            frame = await stream.recv_message()

    def _send(
        self, session: LiveSession, send: pb.SendMessage, sends: set[asyncio.Task[None]]
    ) -> None:
        try:
            command = self._messages.check(
                session.caller, send.chat_id, send.client_message_id, send.text
            )
        except CrabError as error:
            session.push(live.SendFailed(send.client_message_id, send.chat_id, error))
            return
        task = asyncio.create_task(self._store(session, command.client_message_id, command))
        sends.add(task)
        task.add_done_callback(sends.discard)

    async def _store(self, session: LiveSession, client_message_id: str, command: Any) -> None:
        try:
            message = await self._messages.store(command)
        except CrabError as error:
            session.push(live.SendFailed(client_message_id, command.chat_id, error))
        except Exception:
            log.exception("send failed unexpectedly")
            session.push(
                live.SendFailed(client_message_id, command.chat_id, CrabError("internal error"))
            )
        else:
            session.push(live.Ack(client_message_id, message))

    async def _write(self, stream: FrameStream, session: LiveSession) -> None:
        with contextlib.suppress(CrabError):  # the session's error ends the call
            while (batch := await session.next_batch()) is not None:
                for item in batch:
                    await stream.send_message(convert.frame(item))


def _cursors(resume: pb.Resume) -> list[tuple[int, int]]:
    return [(c.chat_id, c.last_seen_id) for c in resume.cursors]
