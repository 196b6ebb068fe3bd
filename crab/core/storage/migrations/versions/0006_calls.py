"""calls: who is ringing, who is in, and how each call ended

Signalling state only (media is never stored). At most one call not ended
per chat: a partial unique index, so two replicas starting one at once
make one call.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("chat_id", sa.BigInteger, sa.ForeignKey("chats.id"), nullable=False),
        sa.Column("started_by", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("video", sa.Boolean, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=False, server_default=""),
        sa.Column("sfu_room", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sfu_pin", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index(
        "ix_calls_chat_live",
        "calls",
        ["chat_id"],
        unique=True,
        sqlite_where=sa.text("status != 3"),
        postgresql_where=sa.text("status != 3"),
    )
    op.create_table(
        "call_members",
        sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id"), primary_key=True),
        sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("session_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_call_members_user_state", "call_members", ["user_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_call_members_user_state", "call_members")
    op.drop_table("call_members")
    op.drop_index("ix_calls_chat_live", "calls")
    op.drop_table("calls")
