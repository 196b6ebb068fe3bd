"""crab's wire messages as C (upb) protobuf classes, built at run time from
the descriptor set shipped beside crab.proto. The load generator decodes
tens of thousands of frames a second; upb does it ~50x faster than
betterproto2. The wire format is the contract, so either runtime speaks it."""

from __future__ import annotations

from functools import cache
from typing import Any

from crab.proto.upb import message_class


class Wire:
    """The messages the bench speaks (attribute access keeps call sites short)."""

    def __init__(self) -> None:
        for name in (
            "Empty",
            "SignUpRequest",
            "SignInRequest",
            "Tokens",
            "User",
            "Chat",
            "ChatRequest",
            "CreateRoomRequest",
            "GetMessagesRequest",
            "MessagePage",
            "SearchMessagesRequest",
            "SearchResults",
            "RoomInviteRequest",
            "Invite",
            "AnswerInviteRequest",
            "InviteAnswer",
            "SendMessage",
            "ChatCursor",
            "Resume",
            "Typing",
            "ClientFrame",
            "ServerFrame",
        ):
            setattr(self, name, message_class(name))

    def __getattr__(self, name: str) -> Any:  # for mypy: the classes are dynamic
        raise AttributeError(name)


@cache
def wire() -> Wire:
    return Wire()


SIGN_UP = "/crab.v1.Accounts/SignUp"
SIGN_IN = "/crab.v1.Accounts/SignIn"
CREATE_ROOM = "/crab.v1.Chats/CreateRoom"
LEAVE_CHAT = "/crab.v1.Chats/LeaveChat"
GET_MESSAGES = "/crab.v1.Chats/GetMessages"
SEARCH_MESSAGES = "/crab.v1.Chats/SearchMessages"
INVITE_TO_ROOM = "/crab.v1.Invites/InviteToRoom"
ANSWER_INVITE = "/crab.v1.Invites/AnswerInvite"
CONNECT = "/crab.v1.Session/Connect"
