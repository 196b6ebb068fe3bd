"""CHAT as scripts name it: a room's name, `@username` for a personal
conversation, or the chat's numeric id. Only chats I am a member of are
found; anything else is "unknown chat" (as the server says NOT_FOUND)."""

from __future__ import annotations

from collections.abc import Sequence

from crab.proto.crab import v1 as pb
from crab.scripting.common import fail


def find_chat(name: str, chats: Sequence[pb.ChatSummary]) -> pb.Chat:
    mine = [s.chat for s in chats if s.chat is not None]
    if name.startswith("@"):
        found = [c for c in mine if c.kind == pb.ChatKind.DIRECT and c.name == name[1:]]
    else:
        found = [c for c in mine if c.kind == pb.ChatKind.ROOM and c.name == name]
        if not found and name.isdigit():
            found = [c for c in mine if c.id == int(name)]
    if not found:
        fail(f"unknown chat {name!r} (a room's name, @username, or an id; see `crab chats`)")
    if len(found) > 1:
        ids = ", ".join(str(c.id) for c in found)
        fail(f"{len(found)} rooms are named {name!r}: give the id instead ({ids})")
    return found[0]
