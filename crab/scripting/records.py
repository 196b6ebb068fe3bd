"""The JSON shapes the scripting commands print, one place so they stay
stable (README "Scripting" documents them), and their plain-text lines.

A message: {"chat", "chat_name", "id", "sender", "sender_name", "text",
"sent_at", and when set: "edited_at", "deleted", "reply_to"}. Times are ISO
8601 in UTC. "chat" and "id" together name a message; ids grow by one per
chat."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crab.proto.crab import v1 as pb

KINDS = {pb.ChatKind.ROOM: "room", pb.ChatKind.DIRECT: "direct"}


def iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def user(u: pb.User | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"id": u.id, "username": u.username, "display_name": u.display_name}


def message(m: pb.Message, chat_name: str) -> dict[str, Any]:
    sender = m.sender or pb.User()
    out: dict[str, Any] = {
        "chat": m.chat_id,
        "chat_name": chat_name,
        "id": m.id,
        "sender": sender.username,
        "sender_name": sender.display_name or sender.username,
        "text": m.text,
        "sent_at": iso(m.sent_at),
    }
    if m.edited_at is not None:
        out["edited_at"] = iso(m.edited_at)
    if m.deleted:
        out["deleted"] = True
    if m.reply_to_id:
        out["reply_to"] = m.reply_to_id
    return out


def message_line(m: pb.Message, chat_name: str) -> str:
    """`[room] 2026-12-05 16:58:01 alice: text` (newlines shown as ⏎)."""
    when = m.sent_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if m.sent_at else "?"
    sender = m.sender.username if m.sender else "?"
    text = "(deleted)" if m.deleted else m.text.replace("\n", " ⏎ ")
    edited = " (edited)" if m.edited_at is not None and not m.deleted else ""
    return f"[{chat_name}] {when} {sender}: {text}{edited}"


def chat_name(c: pb.Chat) -> str:
    """What `crab send` takes: a room's name, `@username` for a person."""
    return f"@{c.name}" if c.kind == pb.ChatKind.DIRECT else c.name


def chat_summary(s: pb.ChatSummary) -> dict[str, Any]:
    c = s.chat or pb.Chat()
    return {
        "id": c.id,
        "kind": KINDS.get(c.kind, "unknown"),
        "name": chat_name(c),
        "topic": c.topic,
        "last_message_id": c.last_message_id,
        "unread": s.unread_count,
        "mentions": s.mention_count,
    }


def chat_summary_line(s: pb.ChatSummary) -> str:
    c = s.chat or pb.Chat()
    unread = f"\t{s.unread_count} unread" if s.unread_count else ""
    return f"{c.id}\t{chat_name(c)}{unread}"


def invite(i: pb.Invite) -> dict[str, Any]:
    chat = i.chat
    return {
        "id": i.id,
        "kind": "direct" if chat is None or chat.kind == pb.ChatKind.DIRECT else "room",
        "room": chat.name if chat is not None and chat.kind == pb.ChatKind.ROOM else None,
        "chat": chat.id if chat is not None and chat.id else None,
        "from": (i.inviter or pb.User()).username,
        "to": (i.invitee or pb.User()).username,
        "created_at": iso(i.created_at),
    }


def invite_line(i: pb.Invite, received: bool) -> str:
    found = invite(i)
    what = f"room {found['room']}" if found["room"] else "a personal conversation"
    if received:
        return f"{i.id}\tfrom {found['from']}: {what}"
    return f"{i.id}\tto {found['to']}: {what}"
