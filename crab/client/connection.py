"""A crab client over grpclib: the stubs, the tokens, and the session
stream. The terminal client and the tests both speak to servers through it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from crab.client.tls import tls_context
from crab.proto.crab import v1 as pb

__all__ = ["CrabClient", "SessionStream", "new_request_id", "tls_context"]

CONNECT = "/crab.v1.Session/Connect"


def new_request_id() -> str:
    """A request id for one user action (CreateRoom, the invite calls): sent
    again unchanged when that action is retried, the server answers with
    the first result instead of acting twice."""
    return uuid.uuid4().hex


class CrabClient:
    """One connection to a crab server. The typed methods below take plain
    values, send the current access token, and return the server's replies;
    the terminal client calls only those. The raw stubs (`accounts`, `users`,
    `chats`, `invites`) stay for tests that send what no method would."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.channel = Channel(host, port, ssl=tls)
        self.accounts = pb.AccountsStub(self.channel)
        self.users = pb.UsersStub(self.channel)
        self.chats = pb.ChatsStub(self.channel)
        self.invites = pb.InvitesStub(self.channel)
        self.tokens: pb.Tokens | None = None
        self._refreshing = asyncio.Lock()

    @property
    def user(self) -> pb.User:
        assert self.tokens is not None and self.tokens.user is not None, "sign in first"
        return self.tokens.user

    @property
    def metadata(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"authorization": f"Bearer {self.tokens.access_token}"}

    async def sign_up(self, username: str, password: str, display_name: str = "") -> pb.User:
        self.tokens = await self.accounts.sign_up(
            pb.SignUpRequest(username=username, password=password, display_name=display_name)
        )
        return self.user

    async def sign_in(self, username: str, password: str) -> pb.User:
        self.tokens = await self.accounts.sign_in(
            pb.SignInRequest(username=username, password=password)
        )
        return self.user

    async def sign_in_options(self) -> pb.SignInOptions:
        """Passwords or not, sign-up open or not, and the identity provider."""
        return await self.accounts.get_sign_in_options(pb.Empty())

    async def sign_in_with_provider(self, id_token: str) -> pb.User:
        """The provider's ID token (from the device flow) for crab's tokens."""
        self.tokens = await self.accounts.sign_in_with_provider(
            pb.ProviderSignInRequest(id_token=id_token)
        )
        return self.user

    async def refresh(self) -> None:
        """New tokens for the current refresh token. Callers at once share
        one Refresh: a refresh token presented twice signs its session out."""
        assert self.tokens is not None
        presented = self.tokens.refresh_token
        async with self._refreshing:
            if self.tokens is not None and self.tokens.refresh_token != presented:
                return  # another caller refreshed while this one waited
            self.tokens = await self.accounts.refresh(pb.RefreshRequest(refresh_token=presented))

    # ---- the account ------------------------------------------------------

    async def who_am_i(self) -> pb.User:
        return await self.accounts.who_am_i(pb.Empty(), metadata=self.metadata)

    async def sign_out(self) -> None:
        """Ends this session on the server (its refresh token stops working)."""
        await self.accounts.sign_out(pb.SignOutRequest(), metadata=self.metadata)

    async def set_display_name(self, name: str) -> pb.User:
        """Members of my chats see it live (a user_updated frame)."""
        request = pb.SetDisplayNameRequest(display_name=name)
        user = await self.accounts.set_display_name(request, metadata=self.metadata)
        if self.tokens is not None:
            self.tokens.user = user
        return user

    async def change_password(self, current: str, new: str) -> None:
        """Every other session of the account ends; this one goes on."""
        request = pb.ChangePasswordRequest(current_password=current, new_password=new)
        await self.accounts.change_password(request, metadata=self.metadata)

    # ---- chats --------------------------------------------------------------

    async def my_chats(self) -> list[pb.ChatSummary]:
        found: list[pb.ChatSummary] = (
            await self.chats.my_chats(pb.Empty(), metadata=self.metadata)
        ).chats
        return found

    async def chat(self, chat_id: int) -> pb.ChatDetail:
        """A chat with its members."""
        return await self.chats.get_chat(pb.ChatRequest(chat_id=chat_id), metadata=self.metadata)

    async def history(self, chat_id: int, before_id: int = 0, limit: int = 0) -> pb.MessagePage:
        """Messages older than `before_id` (0: the newest), newest first;
        `limit` 0 is the server's page (50)."""
        request = pb.GetMessagesRequest(chat_id=chat_id, before_id=before_id, limit=limit)
        return await self.chats.get_messages(request, metadata=self.metadata)

    async def create_room(self, name: str, request_id: str = "") -> pb.Chat:
        """`request_id`: the same on a retry (new_request_id()); empty, the
        server makes one for this call."""
        request = pb.CreateRoomRequest(name=name, request_id=request_id)
        return await self.chats.create_room(request, metadata=self.metadata)

    async def leave_chat(self, chat_id: int) -> None:
        await self.chats.leave_chat(pb.ChatRequest(chat_id=chat_id), metadata=self.metadata)

    async def mark_read(self, chat_id: int, message_id: int) -> None:
        request = pb.MarkReadRequest(chat_id=chat_id, message_id=message_id)
        await self.chats.mark_read(request, metadata=self.metadata)

    # The room's owner only. `request_id`: the same on a retry; None, one
    # is made for this call.

    async def rename_room(self, chat_id: int, name: str, request_id: str | None = None) -> pb.Chat:
        request = pb.RenameRoomRequest(
            chat_id=chat_id, name=name, request_id=request_id or new_request_id()
        )
        return await self.chats.rename_room(request, metadata=self.metadata)

    async def set_topic(self, chat_id: int, topic: str, request_id: str | None = None) -> pb.Chat:
        """An empty topic clears it."""
        request = pb.SetTopicRequest(
            chat_id=chat_id, topic=topic, request_id=request_id or new_request_id()
        )
        return await self.chats.set_topic(request, metadata=self.metadata)

    async def remove_member(
        self, chat_id: int, user_id: int, request_id: str | None = None
    ) -> None:
        request = pb.RemoveMemberRequest(
            chat_id=chat_id, user_id=user_id, request_id=request_id or new_request_id()
        )
        await self.chats.remove_member(request, metadata=self.metadata)

    # ---- changing messages (each answers with the message as it is now) ---
    # `request_id`: the same on a retry (new_request_id()); None, the server
    # makes one for this call.

    async def edit_message(
        self, chat_id: int, message_id: int, text: str, request_id: str | None = None
    ) -> pb.Message:
        request = pb.EditMessageRequest(
            chat_id=chat_id, message_id=message_id, text=text, request_id=request_id or ""
        )
        return await self.chats.edit_message(request, metadata=self.metadata)

    async def delete_message(
        self, chat_id: int, message_id: int, request_id: str | None = None
    ) -> pb.Message:
        request = pb.DeleteMessageRequest(
            chat_id=chat_id, message_id=message_id, request_id=request_id or ""
        )
        return await self.chats.delete_message(request, metadata=self.metadata)

    async def react(
        self, chat_id: int, message_id: int, emoji: str, request_id: str | None = None
    ) -> pb.Message:
        """Toggles my reaction with `emoji` (on if it was off, off if on)."""
        request = pb.ReactRequest(
            chat_id=chat_id, message_id=message_id, emoji=emoji, request_id=request_id or ""
        )
        return await self.chats.react(request, metadata=self.metadata)

    async def get_changes(
        self, chat_id: int, after_change_seq: int, limit: int = 0
    ) -> pb.MessagePage:
        """Messages changed after `after_change_seq`, oldest change first
        (`limit` 0 is the server's page, 200); the next page starts after
        the last one's change_seq."""
        request = pb.GetChangesRequest(
            chat_id=chat_id, after_change_seq=after_change_seq, limit=limit
        )
        return await self.chats.get_changes(request, metadata=self.metadata)

    # ---- people and invites ---------------------------------------------------

    async def search_users(self, query: str, limit: int = 20) -> list[pb.User]:
        request = pb.SearchUsersRequest(query=query, limit=limit)
        found: list[pb.User] = (
            await self.users.search_users(request, metadata=self.metadata)
        ).users
        return found

    async def search_messages(
        self, query: str, chat_id: int = 0, limit: int = 0, page_token: str = ""
    ) -> pb.SearchResults:
        """Messages holding the words in my chats (`chat_id` 0: all of them),
        best first, with the words' places marked; `page_token` from the
        previous page's `next_page_token`."""
        request = pb.SearchMessagesRequest(
            query=query, chat_id=chat_id, limit=limit, page_token=page_token
        )
        return await self.chats.search_messages(request, metadata=self.metadata)

    async def my_invites(self) -> pb.InviteList:
        """Pending invites: `received` and `sent`."""
        return await self.invites.my_invites(pb.Empty(), metadata=self.metadata)

    async def invite_to_room(self, chat_id: int, user_id: int, request_id: str = "") -> pb.Invite:
        request = pb.RoomInviteRequest(chat_id=chat_id, user_id=user_id, request_id=request_id)
        return await self.invites.invite_to_room(request, metadata=self.metadata)

    async def invite_to_direct(self, user_id: int, request_id: str = "") -> pb.Invite:
        """An invite to a personal conversation."""
        request = pb.DirectInviteRequest(user_id=user_id, request_id=request_id)
        return await self.invites.invite_to_direct(request, metadata=self.metadata)

    async def answer_invite(
        self, invite_id: int, accept: bool, request_id: str = ""
    ) -> pb.InviteAnswer:
        request = pb.AnswerInviteRequest(invite_id=invite_id, accept=accept, request_id=request_id)
        return await self.invites.answer_invite(request, metadata=self.metadata)

    # ---- the live stream ------------------------------------------------------

    def session(
        self, cursors: dict[int, int] | None = None, changes: dict[int, int] | None = None
    ) -> SessionStream:
        """`cursors`: chat id -> the newest message id seen; `changes`: chat
        id -> the newest change_seq applied (docs/conversation.md)."""
        return SessionStream(self, cursors or {}, changes or {})

    def close(self) -> None:
        self.channel.close()


def _resume(cursors: dict[int, int], changes: dict[int, int]) -> pb.Resume:
    """Where the client is per chat: newest message id, newest change_seq."""
    chats = [
        pb.ChatCursor(chat_id=c, last_seen_id=s, last_change_seq=changes.get(c, 0))
        for c, s in cursors.items()
    ]
    return pb.Resume(cursors=chats)


class SessionStream:
    """The live stream. `async with client.session(cursors) as s:` opens it,
    resumes from the cursors, and waits for Ready."""

    def __init__(
        self, client: CrabClient, cursors: dict[int, int], changes: dict[int, int] | None = None
    ) -> None:
        self._client = client
        self._cursors = cursors
        self._changes = changes or {}
        self._cm: Any = None
        self.stream: Stream[pb.ClientFrame, pb.ServerFrame] | None = None
        self.ready: pb.Ready | None = None
        # Frames that arrived before Ready (the replay), for the caller to read.
        self.backlog: list[pb.ServerFrame] = []
        self._ended = False  # the server ended the stream (or we said we are done)
        self._server_ended = False  # recv() saw the end and raised the server's status
        self._unpacked: deque[pb.ServerFrame] = deque()  # the rest of a FrameBatch

    async def __aenter__(self) -> SessionStream:
        self._cm = self._client.channel.request(
            CONNECT,
            Cardinality.STREAM_STREAM,
            pb.ClientFrame,
            pb.ServerFrame,
            metadata=self._client.metadata,
        )
        self.stream = await self._cm.__aenter__()
        cursors = _cursors(self._cursors, self._changes)
        await self.stream.send_message(pb.ClientFrame(resume=pb.Resume(cursors=cursors)))
        while True:
            frame = await self.recv()
            if frame is None:
                raise ConnectionError("session stream ended before it was ready")
            if frame.ready is not None:
                self.ready = frame.ready
                return self
            self.backlog.append(frame)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._cm is None:
            return
        if exc is None and not self._ended and self.stream is not None:
            # Leaving a live stream: tell the server we are gone (RST_STREAM).
            await self.stream.cancel()
        if exc is None and self._server_ended:
            # The server ended the stream while our side was open; recv() has
            # already raised its status. grpclib would only add "Outgoing
            # stream was not ended" (or the same status again) on the way out.
            with contextlib.suppress(GRPCError, ProtocolError, StreamTerminatedError):
                await self._cm.__aexit__(None, None, None)
            return
        await self._cm.__aexit__(exc_type, exc, tb)

    async def send(
        self,
        chat_id: int,
        text: str,
        client_message_id: str | None = None,
        reply_to_id: int = 0,
    ) -> str:
        """`reply_to_id`: an earlier message of the same chat (0: not a reply)."""
        assert self.stream is not None
        cid = client_message_id or uuid.uuid4().hex
        send = pb.SendMessage(
            chat_id=chat_id, client_message_id=cid, text=text, reply_to_id=reply_to_id
        )
        await self.stream.send_message(pb.ClientFrame(send=send))
        return cid

    async def resume(self, cursors: dict[int, int], changes: dict[int, int] | None = None) -> None:
        assert self.stream is not None
        chats = _cursors(cursors, changes or {})
        await self.stream.send_message(pb.ClientFrame(resume=pb.Resume(cursors=chats)))

    async def typing(self, chat_id: int) -> None:
        """ "I am typing in this chat" (the server drops more than one per
        couple of seconds, and any for a chat I am not in)."""
        assert self.stream is not None
        await self.stream.send_message(pb.ClientFrame(typing=pb.Typing(chat_id=chat_id)))

    async def call(self, request: pb.CallRequest) -> None:
        """A call frame (start, accept, decline, leave, signal); the answer
        comes as Call, CallSignal or CallError frames."""
        assert self.stream is not None
        await self.stream.send_message(pb.ClientFrame(call=request))

    async def activity(self, away: bool) -> None:
        """Away after idle minutes, back (away=False) when used again."""
        assert self.stream is not None
        await self.stream.send_message(pb.ClientFrame(activity=pb.Activity(away=away)))

    async def done_sending(self) -> None:
        assert self.stream is not None
        self._ended = True
        await self.stream.end()

    async def recv(self) -> pb.ServerFrame | None:
        """The next frame; None once the server has ended the stream with OK.
        Raises GRPCError with the server's status when it ended the stream
        with another (UNAVAILABLE at shutdown: reconnect and resume).
        A FrameBatch is unpacked: its frames come one by one, in order."""
        if self._unpacked:
            return self._unpacked.popleft()
        frame = await self._recv_message()
        if frame is not None and frame.batch is not None:
            self._unpacked.extend(frame.batch.frames)
            return await self.recv()
        return frame

    async def _recv_message(self) -> pb.ServerFrame | None:
        assert self.stream is not None
        try:
            frame: pb.ServerFrame | None = await self.stream.recv_message()
        except StreamTerminatedError:
            # Trailers followed by RST_STREAM: the status is in the trailers.
            self._server_ended = self._ended = True
            self._raise_status()
            raise
        if frame is None:
            self._server_ended = self._ended = True
            self._raise_status()
        return frame

    def _raise_status(self) -> None:
        # grpclib reads the status only when the call is left, and then only
        # if our side was ended first; the caller needs the reason now.
        assert self.stream is not None
        self.stream._maybe_raise()

    async def wait_for(
        self, matches: Callable[[pb.ServerFrame], bool], timeout: float = 10.0
    ) -> pb.ServerFrame:
        """The next frame that matches (others are dropped)."""

        async def find() -> pb.ServerFrame:
            while True:
                frame = await self.recv()
                if frame is None:
                    raise ConnectionError("session stream ended")
                if matches(frame):
                    return frame

        return await asyncio.wait_for(find(), timeout)

    async def collect(
        self, matches: Callable[[pb.ServerFrame], bool], count: int, timeout: float = 10.0
    ) -> Sequence[pb.ServerFrame]:
        return [await self.wait_for(matches, timeout) for _ in range(count)]


def _cursors(seen: dict[int, int], changes: dict[int, int]) -> list[pb.ChatCursor]:
    return [
        pb.ChatCursor(chat_id=c, last_seen_id=seen.get(c, 0), last_change_seq=changes.get(c, 0))
        for c in seen.keys() | changes.keys()
    ]
