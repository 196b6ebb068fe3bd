"""hardening: refresh-token reuse detection, command results for idempotency

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_refresh_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            "uq_sessions_previous_refresh_hash", ["previous_refresh_hash"]
        )
    op.create_table(
        "command_results",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("command_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_command_results_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("command_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_command_results_created_at"))
    op.drop_table("command_results")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_sessions_previous_refresh_hash", type_="unique")
        batch_op.drop_column("previous_refresh_hash")
