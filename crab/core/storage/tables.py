"""The schema, as SQLAlchemy Core tables. Migrations (./migrations) create
exactly this; a test compares the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """SQLite drops tzinfo; store UTC and hand back aware datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; crab stores timezone-aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite the stored text is UTC ("2024-05-01 12:00:00.000000"):
        one C call reads it as an aware time. SQLAlchemy's parse, then the
        method above, then replace() took ~4 us a row: a fifth of a history
        page."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def parse(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value + "+00:00")

        return parse


metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    # Stored lower-cased, so unique ignoring case.
    sa.Column("username", sa.String(32), nullable=False, unique=True),
    sa.Column("display_name", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # When the user's last live session ended (presence: "last seen").
    sa.Column("last_seen_at", UTCDateTime(), nullable=True),
    # Set by an admin (`crab user disable`): no sign-in until enabled again.
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    # Set by `crab user delete`: the row stays for the messages it sent.
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False, index=True),
    # sha256 of the refresh token: a stolen database yields no usable token.
    sa.Column("refresh_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    # The refresh token this one replaced: presenting it again means it was
    # stolen (or copied), and the whole session is revoked (OAuth's advice).
    sa.Column("previous_refresh_hash", sa.String(64), nullable=True, unique=True),
)

chats = sa.Table(
    "chats",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_by", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # The newest message's sequence number; the next message takes +1.
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    # The newest change (edit, delete, reaction) sequence number: docs/conversation.md.
    sa.Column("last_change_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("topic", sa.String(300), nullable=False, server_default=""),
    # "<low user id>:<high user id>" for direct chats: one per pair.
    sa.Column("direct_key", sa.String(64), nullable=True, unique=True),
)

members = sa.Table(
    "members",
    metadata,
    sa.Column("chat_id", sa.BigInteger, sa.ForeignKey("chats.id"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("joined_at", UTCDateTime(), nullable=False),
    sa.Column("last_read_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_members_user_id", "user_id"),
)

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("inviter_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("invitee_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("chat_id", sa.BigInteger, sa.ForeignKey("chats.id"), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # "room:<chat>:<invitee>" or "direct:<low>:<high>": one pending invite each.
    sa.Column("pending_key", sa.String(64), nullable=False, unique=True),
    sa.Index("ix_invites_inviter_id", "inviter_id"),
    # Answered invites are deleted: never hand their id to a new one.
    sqlite_autoincrement=True,
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("chat_id", sa.BigInteger, sa.ForeignKey("chats.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("sender_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("client_message_id", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("reply_to_seq", sa.BigInteger, nullable=True),  # a message of the same chat
    sa.Column("edited_at", UTCDateTime(), nullable=True),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),  # a tombstone: text is ""
    sa.Column("change_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("mentions_room", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_messages_chat_change_seq", "chat_id", "change_seq"),
    # The few messages that mention @room, for "my unread mentions".
    sa.Index(
        "ix_messages_room_mentions",
        "chat_id",
        "seq",
        sqlite_where=sa.text("mentions_room"),
        postgresql_where=sa.text("mentions_room"),
    ),
    sa.UniqueConstraint("chat_id", "seq", name="uq_messages_chat_seq"),
    sa.UniqueConstraint("sender_id", "client_message_id", name="uq_messages_sender_client_id"),
)

# Each command's first result, stored in the transaction that acted: a
# redelivered command or a client's retry with the same request id gets it
# back instead of acting twice. `key` is "<user id>:<request id>".
command_results = sa.Table(
    "command_results",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("outcome", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
)

# Who reacted to which message with what (a toggle: a row or none).
reactions = sa.Table(
    "reactions",
    metadata,
    sa.Column("message_id", sa.BigInteger, sa.ForeignKey("messages.id"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("emoji", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Who a message mentions (@username; @room is messages.mentions_room): the
# key leads with the user, for "my unread mentions in this chat".
mentions = sa.Table(
    "mentions",
    metadata,
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("chat_id", sa.BigInteger, sa.ForeignKey("chats.id"), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    # A message's mentions, read with it and replaced by an edit.
    sa.Index("ix_mentions_chat_seq", "chat_id", "seq"),
)

# Calls (signalling state only: media is never stored). A chat has at most
# one call not ended (ix_calls_chat_live); docs/calls.md.
calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("chat_id", sa.BigInteger, sa.ForeignKey("chats.id"), nullable=False),
    sa.Column("started_by", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("video", sa.Boolean, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("connected_at", UTCDateTime(), nullable=True),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=False, server_default=""),
    sa.Column("sfu_room", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sfu_pin", sa.String(64), nullable=False, server_default=""),
    sa.Index(
        "ix_calls_chat_live",
        "chat_id",
        unique=True,
        sqlite_where=sa.text("status != 3"),
        postgresql_where=sa.text("status != 3"),
    ),
)

call_members = sa.Table(
    "call_members",
    metadata,
    sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id"), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("session_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("joined_at", UTCDateTime(), nullable=True),
    # "Am I in a call already?": the JOINED rows of a user.
    sa.Index("ix_call_members_user_state", "user_id", "state"),
)

# Who signs in through the identity provider: (issuer, subject) names an
# account for good; never an email, which a provider may let users change.
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("issuer", sa.String(255), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
