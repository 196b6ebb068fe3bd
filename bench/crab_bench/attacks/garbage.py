"""garbage: random and mutated request bodies to every crab method but
SignOut (which would end the attacker's session and turn the rest into
UNAUTHENTICATED). Each case is a well-formed HTTP/2 call with the
attacker's token whose body is random bytes, or a valid request with a few
bytes flipped, inserted, removed, cut, or a tag's wire type changed."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from crab.proto.upb import message_class
from crab_bench.attacks.base import GRACE, Tally, Target, left
from crab_bench.attacks.raw import Watched, open_watched, raw_call

CONCURRENCY = 8  # calls in flight on the one connection
ANSWER_WITHIN = 2.0  # a session stream given garbage and then closed should end by then


def _samples(target: Target) -> list[tuple[str, bytes]]:
    """(method path, a valid request body) for every method."""

    def make(kind: str, **fields: Any) -> bytes:
        return bytes(message_class(kind)(**fields).SerializeToString())

    chat = target.garbage_chat
    cursor = message_class("ChatCursor")(chat_id=chat, last_seen_id=1)
    resume = message_class("Resume")(cursors=[cursor])
    return [
        (
            "/crab.v1.Accounts/SignUp",
            make("SignUpRequest", username="garbage", password="garbage-pw", display_name="g"),
        ),
        ("/crab.v1.Accounts/SignIn", make("SignInRequest", username="garbage", password="pw")),
        ("/crab.v1.Accounts/Refresh", make("RefreshRequest", refresh_token="r" * 43)),
        ("/crab.v1.Accounts/WhoAmI", make("Empty")),
        ("/crab.v1.Users/GetUser", make("GetUserRequest", user_id=1)),
        ("/crab.v1.Users/SearchUsers", make("SearchUsersRequest", query="user", limit=5)),
        ("/crab.v1.Chats/MyChats", make("Empty")),
        ("/crab.v1.Chats/GetChat", make("ChatRequest", chat_id=chat)),
        ("/crab.v1.Chats/CreateRoom", make("CreateRoomRequest", name="garbage", request_id="g1")),
        ("/crab.v1.Chats/LeaveChat", make("ChatRequest", chat_id=chat)),
        ("/crab.v1.Chats/GetMessages", make("GetMessagesRequest", chat_id=chat, limit=5)),
        ("/crab.v1.Chats/MarkRead", make("MarkReadRequest", chat_id=chat, message_id=1)),
        ("/crab.v1.Invites/MyInvites", make("Empty")),
        ("/crab.v1.Invites/InviteToRoom", make("RoomInviteRequest", chat_id=chat, user_id=1)),
        ("/crab.v1.Invites/InviteToDirect", make("DirectInviteRequest", user_id=1)),
        ("/crab.v1.Invites/AnswerInvite", make("AnswerInviteRequest", invite_id=1, accept=True)),
        (
            "/crab.v1.Session/Connect",
            bytes(message_class("ClientFrame")(resume=resume).SerializeToString()),
        ),
    ]


def mutate(rng: random.Random, body: bytes) -> bytes:
    """`body` with one to three small changes."""
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        at = min(pos, len(data) - 1)
        if op == 0 and data:
            data[at] ^= 1 << rng.randrange(8)  # a flipped bit
        elif op == 1:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))  # bytes inserted
        elif op == 2:
            del data[pos : pos + rng.randint(1, 8)]  # bytes removed
        elif op == 3 and data:
            data[at] = data[at] & 0xF8 | rng.randrange(8)  # another wire type
        elif op == 4:
            data += rng.randbytes(rng.randint(1, 16))  # a tail
        else:
            del data[pos:]  # cut short
    return bytes(data)


async def garbage(target: Target, until: float, tally: Tally) -> None:
    rng = random.Random(target.seed)
    samples = _samples(target)
    conn: Watched | None = None
    opening = asyncio.Lock()
    cases = 0

    async def connection() -> Watched:
        nonlocal conn
        async with opening:
            if conn is None or conn.closed:
                if conn is not None:
                    tally.count(conn.fate())
                conn = await open_watched(target.host, target.port)
            return conn

    async def caller() -> None:
        nonlocal cases
        while left(until) > 0:
            path, valid = samples[cases % len(samples)]
            cases += 1
            body = mutate(rng, valid) if rng.random() < 0.5 else rng.randbytes(rng.randint(0, 64))
            try:
                live = await connection()
            except OSError as error:
                tally.count(f"connect failed ({type(error).__name__})")
                await asyncio.sleep(0.1)
                continue
            started = time.perf_counter()
            answer_by = min(until + GRACE, time.monotonic() + ANSWER_WITHIN)
            found, _ = await raw_call(
                live, path, body, target.garbage_token, until, None, answer_by
            )
            if found != "no answer in time":
                tally.answered(time.perf_counter() - started)
            tally.count(found)
            if found == "INTERNAL":
                tally.add(f"INTERNAL from {path.rpartition('/')[2]}")

    try:
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    finally:
        tally.figure("cases", cases)
        if conn is not None:
            conn.close()
