"""Every command, event and outcome survives the trip through bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from crab import errors
from crab.core.broker import codec
from crab.core.broker.base import Outcome
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain.models import (
    Call,
    CallMember,
    CallMemberState,
    CallStatus,
    Chat,
    ChatKind,
    ChatSummary,
    Invite,
    InviteAnswer,
    Message,
    MessagePage,
    Presence,
    PresenceState,
    Reaction,
    ReplyQuote,
    User,
)

WHEN = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)
ELSEWHERE = datetime(2024, 5, 17, 11, 0, tzinfo=timezone(timedelta(hours=2)))
ALICE = User(1, "alice", "Alice Ä")
BOB = User(2, "bob", "Bob 🦀")
ROOM = Chat(7, ChatKind.ROOM, "crabs", WHEN, last_message_id=42)
DIRECT = Chat(8, ChatKind.DIRECT, "", ELSEWHERE)
TOPICAL = Chat(7, ChatKind.ROOM, "crabs", WHEN, 42, topic="claws out", owner_id=1)
MESSAGE = Message(7, 43, ALICE, 'hi "there"\nnew line', WHEN, "c-1")
# Every conversation field set: a reply, edited, reacted to, changed.
CHANGED = Message(
    7,
    44,
    BOB,
    "fixed, @alice @room",
    WHEN,
    "c-2",
    reply_to=ReplyQuote(43, ALICE, 'hi "there"'),
    edited_at=ELSEWHERE,
    reactions=(Reaction("👍", (1, 2)), Reaction("🦀", (2,))),
    mention_user_ids=(1,),
    mentions_room=True,
    change_seq=5,
)
TOMBSTONE = Message(7, 45, BOB, "", WHEN, "c-3", deleted=True, change_seq=6)
ROOM_INVITE = Invite(5, ALICE, BOB, ROOM, WHEN)
DIRECT_INVITE = Invite(6, BOB, ALICE, None, ELSEWHERE)
CALL = Call(
    "a1b2",
    7,
    ALICE,
    True,
    CallStatus.ACTIVE,
    (
        CallMember(ALICE, CallMemberState.JOINED, 3, WHEN),
        CallMember(BOB, CallMemberState.RINGING),
    ),
    WHEN,
    connected_at=ELSEWHERE,
    sfu_room=2**52,
    sfu_pin="p-1",
)
ACCEPTED = InviteAnswer(ROOM_INVITE, True, ROOM)
DECLINED = InviteAnswer(DIRECT_INVITE, False, None)

COMMANDS: list[cmd.Command] = [
    cmd.SendMessage(1, 7, "c-1", "hello 🦀"),
    cmd.CreateRoom(1, "crabs"),
    cmd.LeaveChat(1, 7),
    cmd.InviteToRoom(1, 7, 2),
    cmd.InviteToDirect(1, 2),
    cmd.AnswerInvite(2, 5, True),
    cmd.AnswerInvite(2, 6, False),
    cmd.RenameRoom(1, 7, "crabs & co", "r-1"),
    cmd.SetTopic(1, 7, "", "r-2"),
    cmd.RemoveMember(1, 7, 2, "r-3"),
    cmd.SetDisplayName(1, "Alice 🦀", "r-4"),
    cmd.SendMessage(1, 7, "c-2", "me too", reply_to_id=43),
    cmd.EditMessage(1, 7, 43, "hello again", "r-1"),
    cmd.DeleteMessage(1, 7, 43, "r-2"),
    cmd.React(2, 7, 43, "👍🏽", "r-3"),
    cmd.StartCall(1, 3, 7, "a1b2", True, 4, 99, "pin", "r-5"),
    cmd.AnswerCall(2, 4, 7, "a1b2", False, "r-6"),
    cmd.LeaveCall(2, 7, "a1b2", 4, "dropped", "r-7"),
    cmd.StopRinging(7, "a1b2", "r-8"),
]
EVENTS: list[ev.Event] = [
    ev.MessageCreated(MESSAGE),
    ev.MessageChanged(CHANGED),
    ev.MessageChanged(TOMBSTONE),
    ev.InviteReceived(ROOM_INVITE),
    ev.InviteReceived(DIRECT_INVITE),
    ev.InviteAnswered(ACCEPTED),
    ev.InviteAnswered(DECLINED),
    ev.ChatJoined(2, ROOM),
    ev.ChatJoined(2, DIRECT),
    ev.ChatLeft(2, 7),
    ev.MemberJoined(7, BOB),
    ev.MemberLeft(7, BOB),
    ev.SessionEnded(1, 3),
    ev.SessionEnded(1, None),
    ev.SessionEnded(1, None, keep_session_id=4),
    ev.MemberRemoved(7, BOB, ALICE),
    ev.ChatUpdated(TOPICAL),
    ev.UserUpdated(BOB),
    ev.ReadMoved(7, 2, 42),
    ev.Typing(7, BOB),
    ev.CallChanged(CALL),
    ev.CallSignalled("a1b2", 7, BOB, 1, 3, "offer", "v=0\r\n"),
    ev.PresenceChanged(Presence(2, PresenceState.ONLINE)),
    ev.PresenceChanged(Presence(2, PresenceState.OFFLINE, datetime(2026, 12, 1, tzinfo=UTC))),
    ev.PresenceBeat("r1", (ev.UserState(2, False), ev.UserState(3, True)), full=True),
    ev.PresenceBeat("r1", gone=(2,), ask=True),
]
RESULTS: list[Any] = [
    None,
    MESSAGE,
    CHANGED,
    TOMBSTONE,
    ROOM,
    DIRECT,
    TOPICAL,
    ROOM_INVITE,
    DIRECT_INVITE,
    ACCEPTED,
    DECLINED,
    ALICE,
    ChatSummary(ROOM, MESSAGE, 3, 40),
    ChatSummary(DIRECT, None, 0, 0),
    MessagePage([MESSAGE, Message(7, 42, BOB, "x", WHEN, "c-0")], has_more=True),
    MessagePage([], has_more=False),
    CALL,
]
ERRORS: list[errors.CrabError] = [
    errors.Unauthenticated("who are you"),
    errors.PermissionDenied("no"),
    errors.NotFound("chat 7 not found"),
    errors.InvalidArgument("empty text"),
    errors.AlreadyExists("taken"),
    errors.FailedPrecondition("not yours"),
    errors.ResourceExhausted("slow down"),
    errors.Unavailable("try later"),
    errors.CrabError("a bug"),
]


def test_every_type_is_covered() -> None:
    assert {type(c).__name__ for c in COMMANDS} == set(codec.COMMANDS)
    assert {type(e).__name__ for e in EVENTS} == set(codec.EVENTS)
    assert {type(r).__name__ for r in RESULTS if r is not None} == set(codec.RESULTS)
    assert {type(e) for e in ERRORS} == {*errors.ERRORS_BY_CODE.values(), errors.CrabError}


@pytest.mark.parametrize("command", COMMANDS, ids=repr)
def test_command_round_trip(command: cmd.Command) -> None:
    data = codec.encode_command(command)
    assert isinstance(data, bytes)
    assert codec.decode_command(data) == command


@pytest.mark.parametrize("event", EVENTS, ids=repr)
def test_event_round_trip(event: ev.Event) -> None:
    back = codec.decode_event(codec.encode_event(event))
    assert back == event
    assert type(back) is type(event)


@pytest.mark.parametrize("result", RESULTS, ids=repr)
def test_result_round_trip(result: Any) -> None:
    back = codec.decode_outcome(codec.encode_outcome(Outcome(result=result)))
    assert back == Outcome(result=result)


@pytest.mark.parametrize("error", ERRORS, ids=repr)
def test_error_round_trip(error: errors.CrabError) -> None:
    back = codec.decode_outcome(codec.encode_outcome(Outcome(error=error)))
    assert back.result is None
    assert type(back.error) is type(error)
    assert back.error is not None and back.error.message == error.message
    assert back.error.code == error.code


def test_nested_values_come_back_typed() -> None:
    back = codec.decode_event(codec.encode_event(ev.InviteAnswered(ACCEPTED)))
    assert isinstance(back, ev.InviteAnswered)
    chat = back.answer.invite.chat
    assert isinstance(back.answer.invite.inviter, User)
    assert chat is not None and chat.kind is ChatKind.ROOM
    assert chat.created_at == WHEN and chat.created_at.utcoffset() == timedelta(0)
    direct = codec.decode_event(codec.encode_event(ev.ChatJoined(2, DIRECT)))
    assert isinstance(direct, ev.ChatJoined)
    assert direct.chat.created_at.utcoffset() == timedelta(hours=2)


def test_wire_form_is_plain_json() -> None:
    body = json.loads(codec.encode_event(ev.MessageCreated(MESSAGE)))
    assert body == {
        "type": "MessageCreated",
        "data": {
            "message": {
                "chat_id": 7,
                "id": 43,
                "sender": {"id": 1, "username": "alice", "display_name": "Alice Ä"},
                "text": 'hi "there"\nnew line',
                "sent_at": "2024-05-17T09:30:15.123456+00:00",
                "client_message_id": "c-1",
            }
        },
    }
    assert json.loads(codec.encode_outcome(Outcome(result=ROOM)))["result"]["data"]["kind"] == 1
    assert json.loads(codec.encode_outcome(Outcome(error=errors.NotFound("gone")))) == {
        "result": None,
        "error": {"code": "NOT_FOUND", "message": "gone"},
    }


def test_unknown_fields_are_ignored_and_defaults_filled() -> None:
    body = {
        "type": "Chat",
        "data": {"id": 1, "kind": 2, "name": "", "created_at": WHEN.isoformat(), "new": 1},
    }
    outcome = codec.decode_outcome(json.dumps({"result": body, "error": None}).encode())
    assert outcome.result == Chat(1, ChatKind.DIRECT, "", WHEN, last_message_id=0)


def test_unknown_error_code_is_a_plain_crab_error() -> None:
    data = json.dumps({"result": None, "error": {"code": "FROM_THE_FUTURE", "message": "m"}})
    error = codec.decode_outcome(data.encode()).error
    assert type(error) is errors.CrabError and error.message == "m"


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"type": "Nope", "data": {}}',
        b'{"type": ["SendMessage"], "data": {}}',
        b'{"type": "MessageCreated", "data": {}}',  # an event where a command belongs
        b'{"type": "CreateRoom", "data": {"creator_id": 1}}',
        b'{"type": "CreateRoom", "data": {"creator_id": "1", "name": "x"}}',
        b'{"type": "CreateRoom", "data": {"creator_id": true, "name": "x"}}',
        b'{"type": "CreateRoom", "data": null}',
    ],
)
def test_bad_command_bytes_raise_codec_error(data: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode_command(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"type": "ChatLeft", "data": {"user_id": 1}}',
        b'{"type": "ChatJoined", "data": {"user_id": 1, "chat": {"id": 1, "kind": 9, "name": "", "created_at": "2024-01-01T00:00:00+00:00"}}}',
        b'{"type": "ChatJoined", "data": {"user_id": 1, "chat": {"id": 1, "kind": 1, "name": "", "created_at": "2024-01-01T00:00:00"}}}',
        b'{"type": "ChatJoined", "data": {"user_id": 1, "chat": {"id": 1, "kind": 1, "name": "", "created_at": "yesterday"}}}',
        b'{"type": "SendMessage", "data": {"sender_id": 1, "chat_id": 7, "client_message_id": "c", "text": "t"}}',
    ],
)
def test_bad_event_bytes_raise_codec_error(data: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode_event(data)


def test_bad_outcome_bytes_raise_codec_error() -> None:
    for data in (b"{}", b'{"result": null}', b'{"result": null, "error": {"code": 1}}'):
        with pytest.raises(codec.CodecError):
            codec.decode_outcome(data)


def test_what_cannot_travel_is_refused_on_encode() -> None:
    with pytest.raises(codec.CodecError):
        codec.encode_outcome(Outcome(result=object()))
    with pytest.raises(codec.CodecError):
        codec.encode_outcome(Outcome(result=cmd.CreateRoom(1, "x")))  # not a result type
    with pytest.raises(codec.CodecError, match="naive"):
        codec.encode_event(ev.ChatJoined(1, Chat(1, ChatKind.ROOM, "r", datetime(2024, 1, 1))))
