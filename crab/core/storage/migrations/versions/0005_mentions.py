"""mentions: the indexes that read them

A message's mentions are read by (chat, id) (every history page holding an
'@'; an edit or delete replaces them), while the mentions table's key leads
with the user (for "my unread mentions"): an index on (chat_id, seq). The
unread @room messages of a chat are found through a partial index on the
few messages that mention the room, not by reading every unread message.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.create_index("ix_mentions_chat_seq", ["chat_id", "seq"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_room_mentions",
            ["chat_id", "seq"],
            unique=False,
            sqlite_where=sa.text("mentions_room"),
            postgresql_where=sa.text("mentions_room"),
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_room_mentions")
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index("ix_mentions_chat_seq")
