"""search: a full-text index over messages.text

SQLite: an external-content FTS5 table (it stores only the index; the text
stays in messages) kept in step by triggers, so every write path (the
worker, seeding, an edit, a tombstone emptying the text, a delete) updates
it in the same transaction. PostgreSQL: a GIN index on the 'simple'
tsvector of the text ('simple': no stemming, no stop words, so usernames
and code words match as typed). crab/core/storage/search.py queries both.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Accents kept (remove_diacritics 0): PostgreSQL's 'simple' keeps them too.
# prefix='3': a search's last word of 3 letters matches as a prefix
# (crab/core/domain/search.py); without this index "the*" merges every word
# beginning "the" (~50 ms at 1,000,000 messages, 0.5 ms with it).
SQLITE_UP = (
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content='messages', content_rowid='id',
        tokenize='unicode61 remove_diacritics 0', prefix='3')""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    # An edit, and a tombstone (text emptied): the old words leave the index.
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",  # what is already stored
)
SQLITE_DOWN = (
    "DROP TRIGGER messages_fts_update",
    "DROP TRIGGER messages_fts_delete",
    "DROP TRIGGER messages_fts_insert",
    "DROP TABLE messages_fts",
)
POSTGRESQL_UP = (
    "CREATE INDEX ix_messages_text_search ON messages USING gin (to_tsvector('simple', text))",
)
POSTGRESQL_DOWN = ("DROP INDEX ix_messages_text_search",)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_UP if sqlite else POSTGRESQL_UP:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_DOWN if sqlite else POSTGRESQL_DOWN:
        op.execute(statement)
