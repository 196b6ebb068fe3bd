"""Attacks on the session stream by a signed-in member: Resume frames
asking for a long history again and again (amplification), and one Resume
with as many cursors as fit in ~3 MB. `fill_chat` gives the attacker's chat
its history before the first phase."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from crab_bench import wire as w
from crab_bench.attacks.base import GRACE, Tally, Target, left, varint
from crab_bench.attacks.raw import Watched, open_watched, outcome, send_body
from crab_bench.h2raw import GRPC_PREFIX, RawStream

RESUME_EVERY = 0.01  # seconds between the flood's Resume frames (at most)
BIG_RESUME = 3 * 2**20  # bytes of cursors in big-resume's one Resume
FILL_BATCH = 200  # sends in flight while filling the attacker's chat
FILL_TIMEOUT = 300.0


class _Session:
    """A session stream on its own connection that counts what arrives."""

    def __init__(self, conn: Watched, token: str) -> None:
        self.conn = conn
        self.m = w.wire()
        self.messages = 0
        self.bytes = 0
        self.acked: set[str] = set()
        self.refused: set[str] = set()
        self.ready = asyncio.get_running_loop().create_future()
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.stream: RawStream = conn.request(
            w.CONNECT, {"authorization": f"Bearer {token}"}, self._frame, self._end
        )

    @classmethod
    async def open(cls, target: Target, token: str) -> _Session:
        return cls(await open_watched(target.host, target.port), token)

    def _frame(self, data: bytes) -> None:
        self.bytes += len(data) + 5
        self._count(self.m.ServerFrame.FromString(data))

    def _count(self, frame: Any) -> None:
        kind = frame.WhichOneof("kind")
        if kind == "batch":
            for inner in frame.batch.frames:
                self._count(inner)
        elif kind == "message":
            self.messages += 1
        elif kind == "ack":
            self.acked.add(frame.ack.client_message_id)
        elif kind == "send_error":
            self.refused.add(frame.send_error.client_message_id)
        elif kind == "ready" and not self.ready.done():
            self.ready.set_result(None)

    def _end(self, error: str | None) -> None:
        if not self.ended.done():
            self.ended.set_result(outcome(error))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(outcome(error)))

    def resume(self, cursors: dict[int, int]) -> bytes:
        m = self.m
        chats = [m.ChatCursor(chat_id=c, last_seen_id=s) for c, s in cursors.items()]
        return bytes(m.ClientFrame(resume=m.Resume(cursors=chats)).SerializeToString())

    def fate(self) -> str:
        """How the stream ended, or that it stayed open (and the connection's fate)."""
        if self.ended.done():
            return self.ended.result()
        return "stream kept open" if not self.conn.closed else self.conn.fate()

    def close(self) -> None:
        self.stream.cancel()
        self.conn.close()


async def fill_chat(target: Target, count: int) -> None:
    """`count` messages from the attacker in its chat (a rate limit's
    refusals are sent again, with the same ids, a second later)."""
    session = await _Session.open(target, target.token)
    m = session.m
    try:
        await session.stream.send(session.resume({}))
        await asyncio.wait_for(session.ready, 60)
        todo = [f"fill-{n}" for n in range(count)]
        deadline = time.monotonic() + FILL_TIMEOUT
        while todo and time.monotonic() < deadline:
            batch, todo = todo[:FILL_BATCH], todo[FILL_BATCH:]
            for cid in batch:
                send = m.SendMessage(chat_id=target.flood_chat, client_message_id=cid, text=cid)
                await session.stream.send(m.ClientFrame(send=send).SerializeToString())
            while not all(c in session.acked or c in session.refused for c in batch):
                if session.ended.done() or time.monotonic() > deadline:
                    raise ConnectionError(f"filling the attacker's chat: {session.fate()}")
                await asyncio.sleep(0.01)
            again = [c for c in batch if c not in session.acked]
            if again:
                session.refused.difference_update(again)
                todo = again + todo
                await asyncio.sleep(1.0)
        if todo:
            raise TimeoutError(f"filling the attacker's chat: {len(todo)} messages not stored")
    finally:
        session.close()


async def resume_flood(target: Target, until: float, tally: Tally) -> None:
    """Resume frames asking for the attacker's whole chat (cursor 0), one
    after another on one stream for the whole phase, every frame read."""
    session = await _Session.open(target, target.token)
    again = session.resume({target.flood_chat: 0})
    sent = 0
    try:
        while left(until) > 0 and not session.stream.ended:
            await asyncio.wait_for(session.stream.send(again), left(until) + 0.001)
            sent += 1
            await asyncio.sleep(RESUME_EVERY)
    except (TimeoutError, ConnectionError):
        pass  # the server stopped reading, or ended the stream
    finally:
        tally.figure("Resume frames sent", sent)
        tally.figure("messages received", session.messages)
        tally.figure("MiB received", session.bytes / 2**20)
        tally.count(session.fate())
        session.close()


def big_resume_frame(size: int) -> tuple[bytes, int]:
    """A ClientFrame whose Resume holds as many cursors (chat ids 1, 2, ...,
    last seen 0) as fit in `size` bytes; and their number. Written by hand:
    upb objects for half a million cursors cost seconds."""
    cursors = []
    total = 0
    chat_id = 1
    while True:
        inner = b"\x08" + varint(chat_id)  # ChatCursor.chat_id; last_seen_id 0 is implicit
        cursor = b"\x0a" + varint(len(inner)) + inner  # Resume.cursors
        if total + len(cursor) > size:
            break
        cursors.append(cursor)
        total += len(cursor)
        chat_id += 1
    resume = b"".join(cursors)
    return b"\x12" + varint(len(resume)) + resume, len(cursors)  # ClientFrame.resume


async def big_resume(target: Target, until: float, tally: Tally) -> None:
    """One Resume with as many cursors as fit in ~3 MB, on a new stream."""
    body, cursors = big_resume_frame(BIG_RESUME)
    tally.figure("cursors", cursors)
    tally.figure("frame MiB", len(body) / 2**20)
    session = await _Session.open(target, target.token)
    try:
        started = time.perf_counter()
        await send_body(session.stream, GRPC_PREFIX.pack(0, len(body)) + body, until, end=False)
        try:
            await asyncio.wait_for(asyncio.shield(session.ready), left(until) + GRACE)
        except TimeoutError:
            tally.count("no answer in time")
        except ConnectionError:
            tally.answered(time.perf_counter() - started)
        else:
            tally.answered(time.perf_counter() - started)
            tally.count("Ready")
        await asyncio.sleep(left(until))
        tally.count(session.fate())
    finally:
        session.close()
