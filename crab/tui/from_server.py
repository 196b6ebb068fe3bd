"""What the server sends, as the client holds it: wire messages to state
objects (people, lines, chats, invites), session frames to actions, and
errors to the words the status bar shows."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

from grpclib import GRPCError
from grpclib.exceptions import StreamTerminatedError

from crab.client.device_flow import DEFAULT_SCOPES, DeviceCode
from crab.client.device_flow import Provider as FlowProvider
from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui.state import (
    CallItem,
    CallPerson,
    ChatItem,
    IceItem,
    InviteItem,
    Line,
    Person,
    PresenceItem,
    PresenceState,
    Provider,
    ProviderCode,
    Quote,
    Reaction,
)
from crab.tui.views.text import one_line

_EPOCH = datetime.fromtimestamp(0, UTC)


def describe(error: BaseException) -> str:
    """A few words for the status bar: what went wrong, not errno numbers
    and addresses (the server's address is on the bar already)."""
    if isinstance(error, GRPCError):
        return error.message or error.status.name.lower().replace("_", " ")
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: is the server running?"
    if isinstance(error, socket.gaierror):
        return "unknown server name"
    if isinstance(error, TimeoutError):
        return "no answer from the server"
    if isinstance(error, (ConnectionError, StreamTerminatedError)):
        return "the connection dropped"
    if isinstance(error, ssl.SSLError):
        return "TLS failed: " + (error.reason or "handshake error").lower().replace("_", " ")
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


# Drawn on the sign-in screen: what a server or provider may put there.
MAX_PROVIDER_NAME = 40
MAX_USER_CODE = 32
MAX_URI = 2048
MAX_SCOPES = 20


def provider(found: pb.IdentityProvider | None) -> Provider | None:
    """The server's identity provider (None: no single sign-on); its name,
    drawn on the button, inert and cut (a server's hostile text does nothing)."""
    if found is None or not found.issuer or not found.client_id:
        return None
    name = one_line(found.name).strip()[:MAX_PROVIDER_NAME] or "your identity provider"
    scopes = tuple(s for s in found.scopes[:MAX_SCOPES] if s)
    return Provider(name, found.issuer, found.client_id, scopes, found.client_secret)


def flow_provider(chosen: Provider) -> FlowProvider:
    """What the device flow needs of the provider the server named."""
    scopes = chosen.scopes or DEFAULT_SCOPES
    return FlowProvider(chosen.issuer, chosen.client_id, scopes, chosen.client_secret)


def provider_code(code: DeviceCode) -> ProviderCode:
    """The provider's code and pages as the code view draws them: inert, cut."""
    return ProviderCode(
        one_line(code.user_code)[:MAX_USER_CODE],
        one_line(code.verification_uri)[:MAX_URI],
        one_line(code.verification_uri_complete)[:MAX_URI],
    )


def person(u: pb.User | None) -> Person:
    if u is None:
        return Person(0, "?", "?")
    return Person(u.id, u.username, u.display_name or u.username)


def quote(q: pb.ReplyQuote | None) -> Quote | None:
    if q is None:
        return None
    return Quote(person(q.sender).username, q.text_start, q.deleted)


def line(m: pb.Message) -> Line:
    return Line(
        chat_id=m.chat_id,
        id=m.id,
        sender=person(m.sender),
        # The line an ended call left: marked so whatever its text says.
        text=f"{CALL_MARK} {m.text}" if m.call_note else m.text,
        sent_at=m.sent_at or _EPOCH,
        client_message_id=m.client_message_id,
        reply_to_id=m.reply_to_id,
        quote=quote(m.reply_to),
        edited_at=m.edited_at,
        deleted=m.deleted,
        reactions=tuple(Reaction(r.emoji, tuple(r.user_ids)) for r in m.reactions),
        change_seq=m.change_seq,
        mention_user_ids=tuple(m.mention_user_ids),
        mentions_room=m.mentions_room,
    )


def chat(c: pb.Chat, unread: int = 0, last: datetime | None = None, mentions: int = 0) -> ChatItem:
    return ChatItem(
        id=c.id,
        is_room=c.kind == pb.ChatKind.ROOM,
        name=c.name,
        unread=unread,
        mentions=mentions,
        last_message_id=c.last_message_id,
        last_activity=last or c.created_at,
        topic=c.topic,
        owner_id=c.owner_id,
        last_change_seq=c.last_change_seq,
    )


def summary(s: pb.ChatSummary) -> ChatItem:
    assert s.chat is not None
    last = s.last_message.sent_at if s.last_message else None
    return chat(s.chat, unread=s.unread_count, last=last, mentions=s.mention_count)


_STATES = {
    pb.PresenceState.ONLINE: PresenceState.ONLINE,
    pb.PresenceState.AWAY: PresenceState.AWAY,
    pb.PresenceState.OFFLINE: PresenceState.OFFLINE,
}


def presence(p: pb.Presence) -> PresenceItem:
    state = _STATES.get(p.state, PresenceState.OFFLINE)
    return PresenceItem(state, p.last_seen_at if state is PresenceState.OFFLINE else None)


def invite(i: pb.Invite) -> InviteItem:
    return InviteItem(
        id=i.id,
        inviter=person(i.inviter),
        invitee=person(i.invitee),
        room_id=i.chat.id if i.chat else None,
        room_name=i.chat.name if i.chat else "",
    )


def action(frame: pb.ServerFrame, me: int) -> a.Action | None:
    """The action a frame means, or None for frames the client ignores."""
    if frame.message is not None:
        return a.MessageArrived(line(frame.message))
    if frame.message_changed is not None:
        return a.MessageChanged(line(frame.message_changed))
    if frame.ack is not None and frame.ack.message is not None:
        return a.Acked(frame.ack.client_message_id, line(frame.ack.message))
    if frame.send_error is not None:
        e = frame.send_error
        return a.SendRejected(e.client_message_id, e.chat_id, e.code, e.message)
    if frame.invite_received is not None:
        return a.InviteArrived(invite(frame.invite_received))
    if frame.invite_answered is not None:
        answer = frame.invite_answered
        assert answer.invite is not None
        found = invite(answer.invite)
        return a.InviteAnswered(
            invite_id=found.id,
            accepted=answer.accepted,
            by_me=found.invitee.id == me,
            chat=chat(answer.chat) if answer.chat and found.invitee.id == me else None,
            who=found.invitee.username,
        )
    if frame.chat_joined is not None:
        return a.ChatJoined(chat(frame.chat_joined))
    if frame.chat_left is not None:
        return a.ChatLeft(frame.chat_left.chat_id)
    if frame.member_joined is not None:
        m = frame.member_joined
        return a.MemberChanged(m.chat_id, person(m.user), joined=True)
    if frame.member_left is not None:
        m = frame.member_left
        return a.MemberChanged(m.chat_id, person(m.user), joined=False)
    if frame.chat_updated is not None:
        return updated(frame.chat_updated)
    if frame.member_removed is not None:
        r = frame.member_removed
        return a.MemberRemoved(r.chat_id, person(r.user), person(r.by))
    if frame.user_updated is not None:
        return a.PersonUpdated(person(frame.user_updated))
    if frame.read is not None:
        r = frame.read
        return a.ReadMoved(r.chat_id, r.user_id, r.last_read_id)
    if frame.typing is not None:
        return a.TypingSeen(frame.typing.chat_id, person(frame.typing.user))
    if frame.presence is not None:
        return a.PresenceChanged(frame.presence.user_id, presence(frame.presence))
    if frame.call is not None:
        return a.CallUpdated(call(frame.call))
    if frame.call_signal is not None:
        sig = frame.call_signal
        if len(sig.sdp) > MAX_SDP or sig.sdp_type not in ("offer", "answer"):
            return None  # not what a server sends: dropped
        return a.CallSignalArrived(sig.call_id, person(sig.from_).id, sig.sdp_type, sig.sdp)
    if frame.call_error is not None:
        e = frame.call_error
        return a.CallRefused(e.call_id, e.chat_id, e.code, e.message)
    return None


CALL_MARK = "📞"
MAX_SDP = 16 * 1024
MAX_CALL_MEMBERS = 64  # more than any call a chat has; the rest is dropped
MAX_ICE_SERVERS = 8
_STAGES = {1: "ringing", 2: "active", 3: "ended"}
_MEMBER_STATES = {1: "ringing", 2: "joined", 3: "declined", 4: "left", 5: "missed"}


def call(c: pb.Call) -> CallItem:
    members = tuple(
        CallPerson(person(m.user), _MEMBER_STATES.get(int(m.state), "left"))
        for m in c.members[:MAX_CALL_MEMBERS]
    )
    ice = tuple(
        IceItem(tuple(s.urls[:4]), s.username, s.credential)
        for s in c.ice_servers[:MAX_ICE_SERVERS]
    )
    sfu = c.sfu
    return CallItem(
        id=c.id,
        chat_id=c.chat_id,
        started_by=person(c.started_by),
        video=c.video,
        stage=_STAGES.get(int(c.status), "ended"),
        members=members,
        connected_at=c.connected_at,
        end_reason=c.end_reason,
        ice=ice,
        relay_only=c.relay_only,
        sfu_url=sfu.url if sfu else "",
        sfu_room=sfu.room if sfu else 0,
        sfu_pin=sfu.pin if sfu else "",
        sfu_token=sfu.token if sfu else "",
        here=c.here,
    )


def updated(c: pb.Chat) -> a.ChatUpdated:
    return a.ChatUpdated(c.id, c.name, c.topic, c.owner_id)
