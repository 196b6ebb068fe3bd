"""What each effect does: one handler per effect type, in the table
`HANDLERS`. A handler calls the client's typed methods (crab/client) through
the runner, which adds the token refresh and the retries, and dispatches what
came back as actions. The runner (crab/tui/runner.py) runs each as a task."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from grpclib import GRPCError
from grpclib.exceptions import StreamTerminatedError

from crab.client.connection import new_request_id
from crab.client.device_flow import DeviceFlow, DeviceFlowError
from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import clipboard
from crab.tui import effects as fx
from crab.tui.from_server import (
    chat,
    describe,
    flow_provider,
    invite,
    line,
    person,
    presence,
    provider,
    provider_code,
    summary,
    updated,
)
from crab.tui.keys import Command
from crab.tui.state import FoundMessage, Person, PresenceItem

if TYPE_CHECKING:
    from crab.tui.runner import Runner

E = TypeVar("E")
Handler = Callable[["Runner", E], Awaitable[None]]

SEARCH_DEBOUNCE = 0.15  # seconds of quiet typing before a search goes out
PAGE = 100  # messages per history page
FIND = 5  # people searched for to find one by name
FOUND = 50  # message search hits listed
OPEN_AT_PAGES = 20  # at most this many history pages loaded to open a hit
OPEN_AT_CONTEXT = 10  # messages loaded above the hit
PEERS = 50  # personal conversations whose other person is looked up at start

HANDLERS: dict[type[Any], Handler[Any]] = {}


def handles(kind: type[E]) -> Callable[[Handler[E]], Handler[E]]:
    def register(handler: Handler[E]) -> Handler[E]:
        HANDLERS[kind] = handler
        return handler

    return register


@handles(fx.SignIn)
async def sign_in(r: Runner, effect: fx.SignIn) -> None:
    try:
        if effect.sign_up:
            me = await r.client.sign_up(effect.username, effect.password)
        else:
            me = await r.client.sign_in(effect.username, effect.password)
    except GRPCError as error:
        r.dispatch(a.SignInFailed(describe(error)))
        return
    except (OSError, StreamTerminatedError):
        r.dispatch(a.SignInFailed(f"cannot reach {r.server}"))
        return
    r.account.save()
    r.signed_in(me)


@handles(fx.LoadSignInOptions)
async def load_sign_in_options(r: Runner, effect: fx.LoadSignInOptions) -> None:
    try:
        options = await r.client.sign_in_options()
    except (GRPCError, OSError, StreamTerminatedError):
        return  # an older server, or none yet: the password form stays, as before
    r.dispatch(
        a.SignInOptionsLoaded(options.passwords, options.sign_up, provider(options.provider))
    )


@handles(fx.StartDeviceFlow)
async def start_device_flow(r: Runner, effect: fx.StartDeviceFlow) -> None:
    """The device flow at the provider, then its ID token for crab's tokens.
    Its task is kept for Esc (CancelDeviceFlow); errors land on the form."""
    r.device_flow = asyncio.current_task()
    flow = DeviceFlow(flow_provider(effect.provider))
    try:
        code = await flow.start()
        r.dispatch(a.ProviderCodeReady(effect.flow, provider_code(code)))
        id_token = await flow.id_token(code)
        me = await r.client.sign_in_with_provider(id_token)
    except DeviceFlowError as error:
        r.dispatch(a.SignInFailed(str(error)))
        return
    except GRPCError as error:
        r.dispatch(a.SignInFailed(f"{r.server} refused the sign-in: {describe(error)}"))
        return
    except (OSError, StreamTerminatedError):
        r.dispatch(a.SignInFailed(f"cannot reach {r.server}"))
        return
    finally:
        await flow.aclose()
        if r.device_flow is asyncio.current_task():
            r.device_flow = None
    r.account.save()
    r.signed_in(me)


@handles(fx.CancelDeviceFlow)
async def cancel_device_flow(r: Runner, effect: fx.CancelDeviceFlow) -> None:
    if r.device_flow is not None:
        r.device_flow.cancel()
        r.device_flow = None


@handles(fx.LoadChats)
async def load_chats(r: Runner, effect: fx.LoadChats) -> None:
    r.dispatch(a.ChatsLoading())
    try:
        chats = await r.call(r.client.my_chats)
        invites = await r.call(r.client.my_invites)
    except BaseException:
        r.dispatch(a.ChatsLoadFailed())
        raise
    r.dispatch(
        a.ChatsLoaded(
            tuple(summary(s) for s in chats),
            tuple(invite(i) for i in invites.received),
            tuple(invite(i) for i in invites.sent),
        )
    )


@handles(fx.LoadHistory)
async def load_history(r: Runner, effect: fx.LoadHistory) -> None:
    page = await r.call(lambda: r.client.history(effect.chat_id, effect.before, PAGE))
    lines = tuple(line(m) for m in reversed(page.messages))
    r.dispatch(a.HistoryLoaded(effect.chat_id, lines, page.has_more))


@handles(fx.LoadMembers)
async def load_members(r: Runner, effect: fx.LoadMembers) -> None:
    detail = await r.call(lambda: r.client.chat(effect.chat_id))
    r.dispatch(a.MembersLoaded(effect.chat_id, tuple(person(u) for u in detail.members)))
    read = {p.user_id: p.last_read_id for p in detail.read_positions}
    r.dispatch(a.PresenceLoaded(effect.chat_id, read, _presences(detail)))


@handles(fx.LoadPeers)
async def load_peers(r: Runner, effect: fx.LoadPeers) -> None:
    """One GetChat per personal conversation, at most PEERS of them."""
    me = r.client.user.id
    peers: dict[int, Person] = {}
    found: dict[int, PresenceItem] = {}
    for chat_id in effect.chat_ids[:PEERS]:
        detail = await r.call(functools.partial(r.client.chat, chat_id))
        other = next((u for u in detail.members if u.id != me), None)
        if other is not None:
            peers[chat_id] = person(other)
        found.update(_presences(detail))
    r.dispatch(a.PeersLoaded(peers, found))


def _presences(detail: pb.ChatDetail) -> dict[int, PresenceItem]:
    return {p.user_id: presence(p) for p in detail.presence}


@handles(fx.SendTyping)
async def send_typing(r: Runner, effect: fx.SendTyping) -> None:
    await r.link.typing(effect.chat_id)


@handles(fx.ReportActivity)
async def report_activity(r: Runner, effect: fx.ReportActivity) -> None:
    await r.link.set_away(effect.away)


@handles(fx.ExpireTyping)
async def expire_typing(r: Runner, effect: fx.ExpireTyping) -> None:
    await asyncio.sleep(effect.after)
    r.dispatch(a.TypingExpired(effect.serial))


@handles(fx.Send)
async def send(r: Runner, effect: fx.Send) -> None:
    await r.link.send(effect.line)


@handles(fx.CreateRoom)
async def create_room(r: Runner, effect: fx.CreateRoom) -> None:
    request_id = new_request_id()  # the same for every retry
    room = await r.act(lambda: r.client.create_room(effect.name, request_id))
    r.dispatch(a.ChatJoined(chat(room)))
    r.dispatch(a.OpenChat(room.id))
    r.dispatch(a.Notice(f"created room {room.name}; /invite USER to add people"))


@handles(fx.InviteToRoom)
async def invite_to_room(r: Runner, effect: fx.InviteToRoom) -> None:
    user = await find_user(r, effect.username)
    if user is not None:
        request_id = new_request_id()
        await r.act(lambda: r.client.invite_to_room(effect.chat_id, user.id, request_id))
        r.dispatch(a.Notice(f"invited {user.username}"))


@handles(fx.InviteToDirect)
async def invite_to_direct(r: Runner, effect: fx.InviteToDirect) -> None:
    user = await find_user(r, effect.username)
    if user is not None:
        request_id = new_request_id()
        await r.act(lambda: r.client.invite_to_direct(user.id, request_id))
        r.dispatch(a.Notice(f"invited {user.username} to a personal conversation"))


@handles(fx.AnswerInvite)
async def answer_invite(r: Runner, effect: fx.AnswerInvite) -> None:
    request_id = new_request_id()
    answer = await r.act(
        lambda: r.client.answer_invite(effect.invite_id, effect.accept, request_id)
    )
    joined = chat(answer.chat) if answer.chat else None
    me = r.client.user.username
    r.dispatch(a.InviteAnswered(effect.invite_id, effect.accept, True, joined, me))
    if joined is not None:
        r.dispatch(a.OpenChat(joined.id))


@handles(fx.LeaveChat)
async def leave_chat(r: Runner, effect: fx.LeaveChat) -> None:
    await r.call(lambda: r.client.leave_chat(effect.chat_id))
    r.dispatch(a.ChatLeft(effect.chat_id))


@handles(fx.RenameRoom)
async def rename_room(r: Runner, effect: fx.RenameRoom) -> None:
    request_id = new_request_id()  # the same for every retry
    room = await r.act(lambda: r.client.rename_room(effect.chat_id, effect.name, request_id))
    r.dispatch(updated(room))


@handles(fx.SetTopic)
async def set_topic(r: Runner, effect: fx.SetTopic) -> None:
    request_id = new_request_id()
    room = await r.act(lambda: r.client.set_topic(effect.chat_id, effect.topic, request_id))
    r.dispatch(updated(room))


@handles(fx.RemoveMember)
async def remove_member(r: Runner, effect: fx.RemoveMember) -> None:
    request_id = new_request_id()
    await r.act(lambda: r.client.remove_member(effect.chat_id, effect.user_id, request_id))
    r.dispatch(a.Notice(f"removed {effect.username}"))


@handles(fx.SetDisplayName)
async def set_display_name(r: Runner, effect: fx.SetDisplayName) -> None:
    me = await r.act(lambda: r.client.set_display_name(effect.name))
    r.dispatch(a.PersonUpdated(person(me)))
    r.dispatch(a.Notice(f"your display name is now {me.display_name}"))


@handles(fx.ChangePassword)
async def change_password(r: Runner, effect: fx.ChangePassword) -> None:
    # Not retried: a second try after a lost answer would meet the new password.
    await r.call(lambda: r.client.change_password(effect.current, effect.new))
    r.dispatch(a.Notice("password changed; your other sessions are signed out"))


@handles(fx.SearchUsers)
async def search_users(r: Runner, effect: fx.SearchUsers) -> None:
    await asyncio.sleep(SEARCH_DEBOUNCE)
    if r.store.state.search.request != effect.request:
        return  # typing went on: a newer request replaces this one
    found = await r.call(lambda: r.client.search_users(effect.query, 20))
    r.dispatch(a.SearchResults(effect.request, tuple(person(u) for u in found)))


@handles(fx.SearchMessages)
async def search_messages(r: Runner, effect: fx.SearchMessages) -> None:
    found = await r.call(lambda: r.client.search_messages(effect.query, limit=FOUND))
    names = {c.id: c.name for c in r.store.state.chats}
    hits = tuple(
        FoundMessage(
            h.message.chat_id,
            names.get(h.message.chat_id, f"chat {h.message.chat_id}"),
            line(h.message),
            tuple((span.start, span.end) for span in h.marks),
        )
        for h in found.hits
    )
    r.dispatch(a.MessagesFound(effect.request, hits))


@handles(fx.OpenAt)
async def open_at(r: Runner, effect: fx.OpenAt) -> None:
    """Pages from the newest down to a little before the message (the
    loaded history stays one unbroken run up to the newest), then scrolls."""
    chat_id, before = effect.chat_id, 0
    for _ in range(OPEN_AT_PAGES):
        page = await r.call(functools.partial(r.client.history, chat_id, before, PAGE))
        r.dispatch(
            a.HistoryLoaded(chat_id, tuple(line(m) for m in reversed(page.messages)), page.has_more)
        )
        if not page.messages or not page.has_more:
            break
        before = page.messages[-1].id
        if before <= effect.message_id - OPEN_AT_CONTEXT:
            break
    r.dispatch(a.ShowMessage(chat_id, effect.message_id))


READ_EVERY = 1.0  # seconds between two MarkRead calls for one chat


@handles(fx.MarkRead)
async def mark_read(r: Runner, effect: fx.MarkRead) -> None:
    """Reading a burst as it comes (each message shown counts as read) is
    one call at once, then at most one a second with the newest id: the
    server writes each, and a room of 100 reading 80 messages was 8,000."""
    chat_id, marks = effect.chat_id, r.read_marks
    running = chat_id in marks
    marks[chat_id] = max(marks.get(chat_id, 0), effect.message_id)
    if running:
        return  # the loop below, already on its way for this chat, tells it
    told = 0
    try:
        while (newest := marks[chat_id]) > told:
            with contextlib.suppress(GRPCError, OSError, StreamTerminatedError):
                await r.call(functools.partial(r.client.mark_read, chat_id, newest))
            told = newest
            await asyncio.sleep(READ_EVERY)
    finally:
        del marks[chat_id]


@handles(fx.EditMessage)
async def edit_message(r: Runner, effect: fx.EditMessage) -> None:
    request_id = new_request_id()  # the same for every retry
    changed = await r.act(
        lambda: r.client.edit_message(effect.chat_id, effect.message_id, effect.text, request_id)
    )
    r.dispatch(a.MessageChanged(line(changed), from_stream=False))


@handles(fx.DeleteMessage)
async def delete_message(r: Runner, effect: fx.DeleteMessage) -> None:
    request_id = new_request_id()
    changed = await r.act(
        lambda: r.client.delete_message(effect.chat_id, effect.message_id, request_id)
    )
    r.dispatch(a.MessageChanged(line(changed), from_stream=False))


@handles(fx.React)
async def react(r: Runner, effect: fx.React) -> None:
    request_id = new_request_id()
    changed = await r.act(
        lambda: r.client.react(effect.chat_id, effect.message_id, effect.emoji, request_id)
    )
    r.dispatch(a.MessageChanged(line(changed), from_stream=False))


@handles(fx.Copy)
async def copy(r: Runner, effect: fx.Copy) -> None:
    if await clipboard.put(effect.text):
        r.dispatch(a.Notice("copied to the clipboard"))
    else:
        # Over ssh too: the terminal on the other end sets its clipboard.
        r.on_terminal(clipboard.osc52(effect.text))
        r.dispatch(a.Notice(f"sent to the terminal's clipboard (OSC 52); the text: {effect.text}"))


@handles(fx.SignOut)
async def sign_out(r: Runner, effect: fx.SignOut) -> None:
    with contextlib.suppress(GRPCError, OSError, StreamTerminatedError):
        await r.client.sign_out()
    r.signed_out("signed out")


@handles(fx.Reconnect)
async def reconnect(r: Runner, effect: fx.Reconnect) -> None:
    r.link.reconnect_now()


@handles(fx.Bell)
async def bell(r: Runner, effect: fx.Bell) -> None:
    r.on_bell()


@handles(fx.Notify)
async def notify(r: Runner, effect: fx.Notify) -> None:
    r.on_notify(effect.title, effect.body)


@handles(fx.SaveMuted)
async def save_muted(r: Runner, effect: fx.SaveMuted) -> None:
    try:
        await asyncio.to_thread(r.settings.save_muted, r.server, effect.chat_ids)
    except OSError as error:
        r.dispatch(a.Failed(f"muted chats not saved: {error.strerror or error}"))


@handles(fx.SaveBell)
async def save_bell(r: Runner, effect: fx.SaveBell) -> None:
    try:
        await asyncio.to_thread(r.settings.save_bell, effect.bell)
    except OSError as error:
        r.dispatch(a.Failed(f"bell setting not saved: {error.strerror or error}"))


@handles(fx.ExpireNotice)
async def expire_notice(r: Runner, effect: fx.ExpireNotice) -> None:
    await asyncio.sleep(effect.after)
    r.dispatch(a.NoticeExpired(effect.serial))


@handles(fx.Quit)
async def quit_app(r: Runner, effect: fx.Quit) -> None:
    r.on_quit()


async def find_user(r: Runner, username: str) -> pb.User | None:
    """The person with this username, or None (said in the status bar)."""
    for user in await r.call(lambda: r.client.search_users(username, FIND)):
        if user.username == username.lower():
            return user
    r.dispatch(a.Failed(f"no user named {username}"))
    return None


# ---- calls (crab/tui/call_media.py holds my media) ----------------------------

_OPS = {
    "start": pb.CallOp.START,
    "accept": pb.CallOp.ACCEPT,
    "decline": pb.CallOp.DECLINE,
    "leave": pb.CallOp.LEAVE,
}


@handles(fx.CallFrame)
async def call_frame(r: Runner, effect: fx.CallFrame) -> None:
    request = pb.CallRequest(
        op=_OPS[effect.op], chat_id=effect.chat_id, call_id=effect.call_id, video=effect.video
    )
    if not await r.link.call(request):
        r.dispatch(a.CallRefused(effect.call_id, effect.chat_id, "UNAVAILABLE", "offline"))


@handles(fx.MediaJoin)
async def media_join(r: Runner, effect: fx.MediaJoin) -> None:
    media = r.call_media()
    if media is None:
        # No calls extra here: say how to get it, and leave the call again.
        r.dispatch(a.Key(Command.CALL_END))
        r.dispatch(a.Notice(CALLS_MISSING))
        return
    try:
        await media.join(effect.call)
    except Exception as error:  # a device missing, the SFU unreachable...
        # Not left in a call it cannot carry: hang up, and say why.
        await media.leave()
        r.dispatch(a.Key(Command.CALL_END))
        r.dispatch(a.Notice(f"call: {describe(error)}"))


@handles(fx.MediaUpdate)
async def media_update(r: Runner, effect: fx.MediaUpdate) -> None:
    media = r.call_media()
    if media is not None:
        await media.update(effect.call)


@handles(fx.MediaSignal)
async def media_signal(r: Runner, effect: fx.MediaSignal) -> None:
    media = r.call_media()
    if media is not None:
        await media.signal(effect.call_id, effect.from_id, effect.sdp_type, effect.sdp)


@handles(fx.MediaLeave)
async def media_leave(r: Runner, effect: fx.MediaLeave) -> None:
    media = r.call_media()
    if media is not None:
        await media.leave()


@handles(fx.MediaControls)
async def media_controls(r: Runner, effect: fx.MediaControls) -> None:
    media = r.call_media()
    if media is not None:
        media.controls(effect.muted, effect.camera)


CALLS_MISSING = "calls need the calls extra: pip install 'crab[calls]' (and libportaudio2)"
