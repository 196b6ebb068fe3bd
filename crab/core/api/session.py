"""The session stream: one per client, all live traffic both ways. A reader
takes the client's frames (sends, resumes); a writer drains the client's
LiveSession. A bad send gets a SendError frame; the stream lives on. Typing and Activity
frames get no answer: what is not allowed is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from crab.core import metrics
from crab.core.api import convert
from crab.core.api.auth import caller
from crab.core.api.errors import to_grpc
from crab.core.api.fast_writes import DataWriter
from crab.core.api.frame_encoder import FrameEncoder
from crab.core.domain.commands import SendMessage
from crab.core.domain.models import Message
from crab.core.services import live
from crab.core.services.calls import CallFailed, CallRequest
from crab.core.services.live import Hub, LiveSession
from crab.core.services.messages import Messages
from crab.core.storage.failures import as_crab_error
from crab.errors import CrabError, ResourceExhausted
from crab.proto.crab import v1 as pb

log = logging.getLogger(__name__)

FrameStream = Stream[pb.ClientFrame, pb.ServerFrame]
# A send waiting to be stored, with when it was read (perf_counter seconds):
# its acknowledgement's latency is measured from there.
Send = tuple[float, SendMessage]
MAX_QUEUED_SENDS = 1000  # per stream; beyond it a send is refused, not queued
MAX_QUEUED_CALL_FRAMES = 16  # per stream; beyond it a call frame is refused


class SessionServicer:
    def __init__(self, hub: Hub, messages: Messages, frames: FrameEncoder) -> None:
        self._hub = hub
        self._messages = messages
        self._frames = frames

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
        # One client's sends are stored one after another, in the order sent:
        # competing workers would otherwise be free to reorder them.
        sends: asyncio.Queue[Send] = asyncio.Queue(MAX_QUEUED_SENDS)
        calls: asyncio.Queue[CallRequest] = asyncio.Queue(MAX_QUEUED_CALL_FRAMES)
        reader = asyncio.create_task(self._read(stream, session, first, sends, calls))
        sender = asyncio.create_task(self._store_in_order(session, sends))
        phone = asyncio.create_task(self._call_in_order(session, calls))
        writer = asyncio.create_task(self._write(stream, session))
        ended: asyncio.Future[Any] = asyncio.ensure_future(session.ended.wait())
        try:
            done, _ = await asyncio.wait(
                {reader, writer, ended}, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done and not session.ended.is_set():
                reader.result()
                # The client is done sending: answer its sends, then finish.
                answered = asyncio.ensure_future(sends.join())
                await asyncio.wait({answered, ended}, return_when=asyncio.FIRST_COMPLETED)
                answered.cancel()
                session.finish()
                await asyncio.wait({writer, ended}, return_when=asyncio.FIRST_COMPLETED)
            if session.error is not None:
                # Overflow, sign-out or shutdown: end now, even if the writer is
                # stuck on a client that stopped reading.
                raise to_grpc(session.error)
            await writer
        finally:
            # The send in hand is finished (stored, even if no longer answered).
            for task in (reader, writer, ended):
                task.cancel()
            for task in (reader, writer, ended):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for task in (sender, phone):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._hub.disconnect(session)

    async def _read(
        self,
        stream: FrameStream,
        session: LiveSession,
        first: pb.ClientFrame | None,
        sends: asyncio.Queue[Send],
        calls: asyncio.Queue[CallRequest],
    ) -> None:
        frame = first
        if frame is not None and frame.resume is not None:
            frame = await stream.recv_message()
        while frame is not None:
            if frame.send is not None:
                self._accept(session, frame.send, sends)
            elif frame.resume is not None:
                session.resume(_cursors(frame.resume))
            elif frame.typing is not None:
                await self._hub.typed(session, frame.typing.chat_id)
            elif frame.activity is not None:
                await self._hub.set_away(session, frame.activity.away)
            elif frame.call is not None:
                request = convert.call_request(frame.call)
                try:
                    calls.put_nowait(request)
                except asyncio.QueueFull:
                    error = ResourceExhausted("too many call frames waiting; slow down")
                    session.push(CallFailed(request.call_id, request.chat_id, error))
            frame = await stream.recv_message()

    def _accept(
        self, session: LiveSession, send: pb.SendMessage, sends: asyncio.Queue[Send]
    ) -> None:
        """Refuses at once what can be refused without the database."""
        received = time.perf_counter()
        try:
            command = self._messages.check(
                session.caller, send.chat_id, send.client_message_id, send.text, send.reply_to_id
            )
            sends.put_nowait((received, command))
        except asyncio.QueueFull:
            error = ResourceExhausted("too many sends waiting; wait for acknowledgements")
            _failed(session, send.client_message_id, send.chat_id, error)
        except CrabError as error:
            _failed(session, send.client_message_id, send.chat_id, error)

    async def _store_in_order(self, session: LiveSession, sends: asyncio.Queue[Send]) -> None:
        while True:
            received, command = await sends.get()
            try:
                # Shielded: a send handed to the worker is finished even if
                # the stream goes away meanwhile.
                await asyncio.shield(self._store(session, command, received))
            finally:
                sends.task_done()

    async def _store(self, session: LiveSession, command: SendMessage, received: float) -> None:
        cid = command.client_message_id
        try:
            message = await self._messages.store(command)
        except CrabError as error:
            _failed(session, cid, command.chat_id, error)
        except Exception as exc:
            failure = as_crab_error(exc)  # an outage or a full disk, as such
            if failure is None:
                log.exception("send failed unexpectedly")
                failure = CrabError("internal error")
            _failed(session, cid, command.chat_id, failure)
        else:
            session.push(live.Ack(cid, message))
            metrics.ACK_LATENCY.observe(time.perf_counter() - received)
            metrics.SENDS_OK.inc()

    async def _call_in_order(self, session: LiveSession, calls: asyncio.Queue[CallRequest]) -> None:
        """One stream's call frames, one at a time (each may wait for the worker)."""
        while True:
            request = await calls.get()
            try:
                in_call = request.call_id in session.calls
                await self._hub.phone.request(session.caller, request, in_call)
            except Exception as exc:
                error = exc if isinstance(exc, CrabError) else as_crab_error(exc)
                if error is None:
                    log.exception("call frame failed unexpectedly")
                    error = CrabError("internal error")
                session.push(CallFailed(request.call_id, request.chat_id, error))

    async def _write(self, stream: FrameStream, session: LiveSession) -> None:
        writer = DataWriter(stream)
        with contextlib.suppress(CrabError):  # the session's error ends the call
            while (batch := await session.next_batch()) is not None:
                for data in self._frames.writes(batch):
                    await writer.send(data)
                # One increment per batch: a fan-out writes many messages each.
                metrics.MESSAGES_DELIVERED.inc(sum(type(i) is Message for i in batch))


def _failed(session: LiveSession, client_message_id: str, chat_id: int, error: CrabError) -> None:
    session.push(live.SendFailed(client_message_id, chat_id, error))
    metrics.SENDS.labels(metrics.status_of(error)).inc()


def _cursors(resume: pb.Resume) -> list[tuple[int, int, int]]:
    return [(c.chat_id, c.last_seen_id, c.last_change_seq) for c in resume.cursors]
