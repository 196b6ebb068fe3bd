"""`crab send CHAT [TEXT]`: each message is sent on the session stream with
its own client message id and waited on until the server acknowledges it
(stored). A lost connection is retried with the same id, so a retry never
stores a message twice; a refusal stops at that message."""

from __future__ import annotations

import asyncio
import contextlib
import time

from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import SessionStream, new_request_id
from crab.proto.crab import v1 as pb
from crab.scripting.common import (
    CONNECTION_LOST,
    EXIT_UNREACHABLE,
    Failure,
    Target,
    fail,
    signed_in,
)
from crab.scripting.lookup import find_chat
from crab.tui.account import Account

ACK_TIMEOUT = 30.0  # an answer this late means the server is stuck: reconnect


def texts_from(text: str | None, stdin: str, lines: bool) -> list[str]:
    """TEXT, or stdin whole (its last newline dropped), or one per line."""
    if text is not None:
        found = [text]
    elif lines:
        found = [line for line in stdin.splitlines() if line.strip()]
    else:
        found = [stdin.removesuffix("\n")]
    if not any(t.strip() for t in found):
        fail("nothing to send: the text is empty")
    return found


class Sender:
    """One session stream, reopened when the connection is lost."""

    def __init__(self, account: Account, chat_id: int, wait: float) -> None:
        self._account = account
        self._chat_id = chat_id
        self._wait = wait  # seconds to keep retrying an unreachable or busy server
        self._stack: contextlib.AsyncExitStack | None = None
        self._live: SessionStream | None = None

    async def _open(self) -> SessionStream:
        if self._live is None:
            stack = contextlib.AsyncExitStack()
            try:
                self._live = await stack.enter_async_context(self._account.client.session())
            except BaseException:
                await _quietly(stack)
                raise
            self._stack = stack
        return self._live

    async def close(self) -> None:
        stack, self._stack, self._live = self._stack, None, None
        if stack is not None:
            await _quietly(stack)

    async def send(self, text: str) -> pb.Message:
        """The stored message. Raises Failure when refused or unreachable."""
        cid = new_request_id()
        gave_up_at = time.monotonic() + self._wait
        pause = 0.2
        refreshed = False
        while True:
            try:
                live = await self._open()
                await live.send(self._chat_id, text, cid)
                frame = await live.wait_for(lambda f: _answers(f, cid), ACK_TIMEOUT)
            except GRPCError as error:
                await self.close()
                if error.status is Status.UNAUTHENTICATED and not refreshed:
                    await self._account.refresh()  # refused: raised, "signed out"
                    refreshed = True  # once: a fresh token refused again is final
                    continue
                if error.status is not Status.UNAVAILABLE:
                    raise
                lost: BaseException = error
            except (*CONNECTION_LOST, TimeoutError) as error:
                await self.close()
                lost = error
            else:
                refused = frame.send_error
                if refused is None:
                    assert frame.ack is not None and frame.ack.message is not None
                    return frame.ack.message
                if refused.code != "RESOURCE_EXHAUSTED" or time.monotonic() + pause > gave_up_at:
                    raise Failure(f"not sent: {refused.message}")
                # Rate limited (a long --lines): not stored; the same id again, later.
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            if time.monotonic() + pause > gave_up_at:
                raise Failure(f"server down: {_why(lost)}", EXIT_UNREACHABLE)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


def _answers(frame: pb.ServerFrame, cid: str) -> bool:
    found: str | None = None
    if frame.ack is not None:
        found = frame.ack.client_message_id
    elif frame.send_error is not None:
        found = frame.send_error.client_message_id
    return found == cid


def _why(error: BaseException) -> str:
    if isinstance(error, GRPCError):
        return error.message or error.status.name.lower()
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or "no answer"


async def _quietly(stack: contextlib.AsyncExitStack) -> None:
    with contextlib.suppress(Exception):
        await stack.aclose()


async def send(
    target: Target, chat: str, text: str | None, stdin: str, lines: bool, wait: float
) -> None:
    texts = texts_from(text, stdin, lines)
    async with signed_in(target) as account:
        chats = await _my_chats(account, wait)
        found = find_chat(chat, chats)
        sender = Sender(account, found.id, wait)
        try:
            for text in texts:
                await sender.send(text)
        finally:
            await sender.close()


async def _my_chats(account: Account, wait: float) -> list[pb.ChatSummary]:
    """MyChats, retried like a send while the server is unreachable."""
    gave_up_at = time.monotonic() + wait
    pause = 0.2
    while True:
        try:
            return await account.call(account.client.my_chats)
        except (*CONNECTION_LOST, GRPCError) as error:
            if isinstance(error, GRPCError) and error.status is not Status.UNAVAILABLE:
                raise
            if time.monotonic() + pause > gave_up_at:
                raise Failure(f"server down: {_why(error)}", EXIT_UNREACHABLE) from None
        await asyncio.sleep(pause)
        pause = min(pause * 2, 5.0)
