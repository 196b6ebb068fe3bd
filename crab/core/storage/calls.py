"""Calls and who is in them (signalling state; docs/calls.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crab.core.domain.models import Call, CallMember, CallMemberState, CallStatus
from crab.core.storage.tables import call_members, calls, members, users
from crab.core.storage.users import USER_COLUMNS, to_user


def get(conn: Connection, call_id: str, lock: bool = False) -> Call | None:
    """The call; `lock` holds its row until the transaction ends, so two
    workers answering one call at once take turns (PostgreSQL; SQLite has
    one writer anyway)."""
    query = sa.select(calls).where(calls.c.id == call_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _call(conn, row)


def live_in_chat(conn: Connection, chat_id: int) -> Call | None:
    """The chat's call not yet ended, if any (at most one: ix_calls_chat_live)."""
    query = sa.select(calls).where(
        calls.c.chat_id == chat_id, calls.c.status != int(CallStatus.ENDED)
    )
    row = conn.execute(query.with_for_update()).first()
    return None if row is None else _call(conn, row)


def in_progress(conn: Connection) -> dict[CallStatus, int]:
    """How many calls are ringing and how many active, in all (for metrics)."""
    rows = conn.execute(
        sa.select(calls.c.status, sa.func.count())
        .where(calls.c.status != int(CallStatus.ENDED))
        .group_by(calls.c.status)
    ).all()
    return {CallStatus(status): count for status, count in rows}


def live_for_member(conn: Connection, user_id: int) -> list[Call]:
    """The calls going on in the user's chats (read when a stream starts)."""
    rows = conn.execute(
        sa.select(calls)
        .join(members, members.c.chat_id == calls.c.chat_id)
        .where(members.c.user_id == user_id, calls.c.status != int(CallStatus.ENDED))
    ).all()
    return [_call(conn, row) for row in rows]


def in_other_call(conn: Connection, user_id: int, call_id: str) -> bool:
    """Whether the user is in a call other than this one (one at a time)."""
    query = (
        sa.select(call_members.c.call_id)
        .join(calls, calls.c.id == call_members.c.call_id)
        .where(
            call_members.c.user_id == user_id,
            call_members.c.state == int(CallMemberState.JOINED),
            call_members.c.call_id != call_id,
            calls.c.status != int(CallStatus.ENDED),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def joined_by(conn: Connection, user_id: int) -> list[tuple[str, int]]:
    """(call id, chat id) of the calls going on that the user is in."""
    query = (
        sa.select(calls.c.id, calls.c.chat_id)
        .join(call_members, calls.c.id == call_members.c.call_id)
        .where(
            call_members.c.user_id == user_id,
            call_members.c.state == int(CallMemberState.JOINED),
            calls.c.status != int(CallStatus.ENDED),
        )
    )
    return [(row.id, row.chat_id) for row in conn.execute(query)]


def insert(conn: Connection, call: Call) -> None:
    conn.execute(
        sa.insert(calls).values(
            id=call.id,
            chat_id=call.chat_id,
            started_by=call.started_by.id,
            video=call.video,
            status=int(call.status),
            started_at=call.started_at,
            sfu_room=call.sfu_room,
            sfu_pin=call.sfu_pin,
        )
    )
    conn.execute(
        sa.insert(call_members),
        [
            {
                "call_id": call.id,
                "user_id": m.user.id,
                "state": int(m.state),
                "session_id": m.session_id,
                "joined_at": m.joined_at,
            }
            for m in call.members
        ],
    )


def set_member(
    conn: Connection,
    call_id: str,
    user_id: int,
    state: CallMemberState,
    session_id: int = 0,
    joined_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"state": int(state), "session_id": session_id}
    if joined_at is not None:
        values["joined_at"] = joined_at
    conn.execute(
        sa.update(call_members)
        .where(call_members.c.call_id == call_id, call_members.c.user_id == user_id)
        .values(**values)
    )


def add_member(conn: Connection, call_id: str, member: CallMember) -> None:
    """Someone who joined the chat after the call started and joins it."""
    conn.execute(
        sa.insert(call_members).values(
            call_id=call_id,
            user_id=member.user.id,
            state=int(member.state),
            session_id=member.session_id,
            joined_at=member.joined_at,
        )
    )


def connect(conn: Connection, call_id: str, when: datetime) -> None:
    conn.execute(
        sa.update(calls)
        .where(calls.c.id == call_id)
        .values(status=int(CallStatus.ACTIVE), connected_at=when)
    )


def end(conn: Connection, call_id: str, when: datetime, reason: str) -> None:
    conn.execute(
        sa.update(calls)
        .where(calls.c.id == call_id)
        .values(status=int(CallStatus.ENDED), ended_at=when, end_reason=reason)
    )
    # Whoever was still ringing missed it; whoever was in has left.
    conn.execute(
        sa.update(call_members)
        .where(
            call_members.c.call_id == call_id,
            call_members.c.state == int(CallMemberState.RINGING),
        )
        .values(state=int(CallMemberState.MISSED))
    )
    conn.execute(
        sa.update(call_members)
        .where(
            call_members.c.call_id == call_id,
            call_members.c.state == int(CallMemberState.JOINED),
        )
        .values(state=int(CallMemberState.LEFT), session_id=0)
    )


def _call(conn: Connection, row: Any) -> Call:
    member_rows = conn.execute(
        sa.select(
            call_members.c.state,
            call_members.c.session_id,
            call_members.c.joined_at,
            *USER_COLUMNS,
        )
        .join(users, users.c.id == call_members.c.user_id)
        .where(call_members.c.call_id == row.id)
        .order_by(users.c.id)
    ).all()
    members = tuple(
        CallMember(to_user(m), CallMemberState(m.state), m.session_id, m.joined_at)
        for m in member_rows
    )
    starter = next((m.user for m in members if m.user.id == row.started_by), None)
    if starter is None:  # left the chat, so no member row: read the user alone
        found = conn.execute(sa.select(*USER_COLUMNS).where(users.c.id == row.started_by)).one()
        starter = to_user(found)
    return Call(
        id=row.id,
        chat_id=row.chat_id,
        started_by=starter,
        video=bool(row.video),
        status=CallStatus(row.status),
        members=members,
        started_at=row.started_at,
        connected_at=row.connected_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        sfu_room=row.sfu_room,
        sfu_pin=row.sfu_pin,
    )
