"""Domain objects to wire messages. The only place that knows both."""

from __future__ import annotations

from crab.core.domain import events as ev
from crab.core.domain import search
from crab.core.domain.models import (
    Call,
    Chat,
    ChatDetails,
    ChatSummary,
    Invite,
    InviteAnswer,
    Message,
    Presence,
    ReplyQuote,
    User,
)
from crab.core.services import live
from crab.core.services.accounts import Accounts
from crab.core.services.calls import CallFailed, CallRequest, CallView
from crab.core.services.tokens import Tokens
from crab.proto.crab import v1 as pb


def user(u: User) -> pb.User:
    return pb.User(id=u.id, username=u.username, display_name=u.display_name)


def chat(c: Chat) -> pb.Chat:
    return pb.Chat(
        id=c.id,
        kind=pb.ChatKind(int(c.kind)),
        name=c.name,
        created_at=c.created_at,
        last_message_id=c.last_message_id,
        topic=c.topic,
        owner_id=c.owner_id,
        last_change_seq=c.last_change_seq,
    )


def quote(q: ReplyQuote) -> pb.ReplyQuote:
    return pb.ReplyQuote(
        message_id=q.message_id, sender=user(q.sender), text_start=q.text_start, deleted=q.deleted
    )


def message(m: Message) -> pb.Message:
    return pb.Message(
        chat_id=m.chat_id,
        id=m.id,
        sender=user(m.sender),
        text=m.text,
        sent_at=m.sent_at,
        client_message_id=m.client_message_id,
        reply_to_id=m.reply_to.message_id if m.reply_to else 0,
        reply_to=quote(m.reply_to) if m.reply_to else None,
        edited_at=m.edited_at,
        deleted=m.deleted,
        reactions=[pb.Reaction(emoji=r.emoji, user_ids=list(r.user_ids)) for r in m.reactions],
        mention_user_ids=list(m.mention_user_ids),
        mentions_room=m.mentions_room,
        change_seq=m.change_seq,
        call_note=m.call_note,
    )


def summary(s: ChatSummary) -> pb.ChatSummary:
    return pb.ChatSummary(
        chat=chat(s.chat),
        last_message=message(s.last_message) if s.last_message else None,
        unread_count=s.unread_count,
        last_read_id=s.last_read_id,
        mention_count=s.mention_count,
    )


def presence(p: Presence) -> pb.Presence:
    return pb.Presence(
        user_id=p.user_id, state=pb.PresenceState(int(p.state)), last_seen_at=p.last_seen_at
    )


def details(d: ChatDetails) -> pb.ChatDetail:
    return pb.ChatDetail(
        chat=chat(d.chat),
        members=[user(u) for u in d.members],
        presence=[presence(p) for p in d.presence],
        read_positions=[
            pb.ReadPosition(user_id=r.user_id, last_read_id=r.last_read_id)
            for r in d.read_positions
        ],
    )


def invite(i: Invite) -> pb.Invite:
    return pb.Invite(
        id=i.id,
        inviter=user(i.inviter),
        invitee=user(i.invitee),
        chat=chat(i.chat) if i.chat else None,
        created_at=i.created_at,
    )


def answer(a: InviteAnswer) -> pb.InviteAnswer:
    return pb.InviteAnswer(
        invite=invite(a.invite), accepted=a.accepted, chat=chat(a.chat) if a.chat else None
    )


def sign_in_options(accounts: Accounts) -> pb.SignInOptions:
    options = pb.SignInOptions(
        passwords=accounts.passwords_on, sign_up=accounts.passwords_on and accounts.signup_open
    )
    found = accounts.provider
    if found is not None:
        options.provider = pb.IdentityProvider(
            name=found.display_name,
            issuer=found.settings.issuer,
            client_id=found.settings.client_id,
            scopes=list(found.settings.scopes),
            client_secret=found.settings.client_secret,
        )
    return options


def tokens(t: Tokens) -> pb.Tokens:
    return pb.Tokens(
        access_token=t.access_token,
        refresh_token=t.refresh_token,
        access_expires_at=t.access_expires_at,
        user=user(t.user),
    )


def search_results(r: search.Results) -> pb.SearchResults:
    hits = [
        pb.SearchHit(
            message=message(h.message),
            marks=[pb.TextSpan(start=start, end=end) for start, end in h.marks],
        )
        for h in r.hits
    ]
    return pb.SearchResults(hits=hits, next_page_token=r.next_page_token)


def frame(item: live.Outgoing) -> pb.ServerFrame:
    """A fresh frame per item: betterproto2 oneofs must never be reused."""
    match item:
        case Message():
            return pb.ServerFrame(message=message(item))
        case live.Changed():
            return pb.ServerFrame(message_changed=message(item.message))
        case live.Ack():
            return pb.ServerFrame(
                ack=pb.SendAck(
                    client_message_id=item.client_message_id, message=message(item.message)
                )
            )
        case live.SendFailed():
            return pb.ServerFrame(
                send_error=pb.SendError(
                    client_message_id=item.client_message_id,
                    chat_id=item.chat_id,
                    code=item.error.code,
                    message=item.error.message,
                )
            )
        case live.Ready():
            ready = pb.Ready(user=user(item.user), max_message_chars=item.max_message_chars)
            return pb.ServerFrame(ready=ready)
        case ev.InviteReceived():
            return pb.ServerFrame(invite_received=invite(item.invite))
        case ev.InviteAnswered():
            return pb.ServerFrame(invite_answered=answer(item.answer))
        case ev.ChatJoined():
            return pb.ServerFrame(chat_joined=chat(item.chat))
        case ev.ChatLeft():
            return pb.ServerFrame(chat_left=pb.ChatLeft(chat_id=item.chat_id))
        case ev.MemberJoined():
            return pb.ServerFrame(
                member_joined=pb.MemberChange(chat_id=item.chat_id, user=user(item.user))
            )
        case ev.MemberLeft():
            return pb.ServerFrame(
                member_left=pb.MemberChange(chat_id=item.chat_id, user=user(item.user))
            )
        case ev.MemberRemoved():
            removed = pb.MemberRemoved(chat_id=item.chat_id, user=user(item.user), by=user(item.by))
            return pb.ServerFrame(member_removed=removed)
        case ev.ChatUpdated():
            return pb.ServerFrame(chat_updated=chat(item.chat))
        case ev.UserUpdated():
            return pb.ServerFrame(user_updated=user(item.user))
        case ev.ReadMoved():
            read = pb.ReadReceipt(
                chat_id=item.chat_id, user_id=item.user_id, last_read_id=item.last_read_id
            )
            return pb.ServerFrame(read=read)
        case ev.Typing():
            return pb.ServerFrame(
                typing=pb.TypingNotice(chat_id=item.chat_id, user=user(item.user))
            )
        case ev.PresenceChanged():
            return pb.ServerFrame(presence=presence(item.presence))
        case CallView():
            return pb.ServerFrame(call=call_view(item))
        case ev.CallSignalled():
            signal = pb.CallSignal(
                call_id=item.call_id,
                chat_id=item.chat_id,
                from_=user(item.sender),
                sdp_type=item.sdp_type,
                sdp=item.sdp,
            )
            return pb.ServerFrame(call_signal=signal)
        case CallFailed():
            error = pb.CallError(
                call_id=item.call_id,
                chat_id=item.chat_id,
                code=item.error.code,
                message=item.error.message,
            )
            return pb.ServerFrame(call_error=error)
    raise TypeError(f"no frame for {item!r}")


_CALL_OPS = {
    pb.CallOp.START: "start",
    pb.CallOp.ACCEPT: "accept",
    pb.CallOp.DECLINE: "decline",
    pb.CallOp.LEAVE: "leave",
    pb.CallOp.SIGNAL: "signal",
}


def call_request(r: pb.CallRequest) -> CallRequest:
    """A client's call frame; an unknown op stays unknown (refused by Phone)."""
    return CallRequest(
        op=_CALL_OPS.get(r.op, f"op {int(r.op)}"),
        chat_id=r.chat_id,
        call_id=r.call_id,
        video=r.video,
        to_user_id=r.to_user_id,
        sdp_type=r.sdp_type,
        sdp=r.sdp,
    )


def call(c: Call) -> pb.Call:
    return pb.Call(
        id=c.id,
        chat_id=c.chat_id,
        started_by=user(c.started_by),
        video=c.video,
        status=pb.CallStatus(int(c.status)),
        members=[
            pb.CallMember(
                user=user(m.user), state=pb.CallMemberState(int(m.state)), joined_at=m.joined_at
            )
            for m in c.members
        ],
        started_at=c.started_at,
        connected_at=c.connected_at,
        ended_at=c.ended_at,
        end_reason=c.end_reason,
    )


def call_view(v: CallView) -> pb.Call:
    out = call(v.call)
    out.ice_servers = [
        pb.IceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in v.ice_servers
    ]
    if v.sfu_url:
        out.sfu = pb.CallSfu(
            url=v.sfu_url, room=v.call.sfu_room, pin=v.call.sfu_pin, token=v.sfu_token
        )
    out.relay_only = v.relay_only
    out.here = v.here
    return out
