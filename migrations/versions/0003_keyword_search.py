"""keyword search: SQLite FTS5 table kept by triggers; PostgreSQL tsvector column and GIN indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:30:00

Not in the SQLAlchemy models on purpose (``migrations/env.py`` leaves these names out of ``alembic check``):
they are derived data, maintained by the database itself from ``text_items.text`` and ``media_files.path``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite: one FTS5 table; a text item's row has rowid = its id, a file name's row rowid = -file id.
_SQLITE_BASENAME = "replace({p}, rtrim({p}, replace({p}, '/', '')), '')"
_SQLITE_UP = [
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "body, file_id UNINDEXED, tokenize = 'porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER text_items_fts_insert AFTER INSERT ON text_items BEGIN "
    "INSERT INTO search_fts(rowid, body, file_id) VALUES (new.id, new.text, new.file_id); END",
    "CREATE TRIGGER text_items_fts_delete AFTER DELETE ON text_items BEGIN "
    "DELETE FROM search_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER text_items_fts_update AFTER UPDATE OF text ON text_items BEGIN "
    "UPDATE search_fts SET body = new.text WHERE rowid = old.id; END",
    "CREATE TRIGGER media_files_fts_insert AFTER INSERT ON media_files BEGIN "
    f"INSERT INTO search_fts(rowid, body, file_id) VALUES (-new.id, {_SQLITE_BASENAME.format(p='new.path')}, new.id); "
    "END",
    "CREATE TRIGGER media_files_fts_delete AFTER DELETE ON media_files BEGIN "
    "DELETE FROM search_fts WHERE rowid = -old.id; END",
    "CREATE TRIGGER media_files_fts_update AFTER UPDATE OF path ON media_files BEGIN "
    f"UPDATE search_fts SET body = {_SQLITE_BASENAME.format(p='new.path')} WHERE rowid = -old.id; END",
    "INSERT INTO search_fts(rowid, body, file_id) SELECT id, text, file_id FROM text_items",
    f"INSERT INTO search_fts(rowid, body, file_id) SELECT -id, {_SQLITE_BASENAME.format(p='path')}, id "
    "FROM media_files",
]
_SQLITE_DOWN = [
    *(
        f"DROP TRIGGER IF EXISTS {table}_fts_{event}"
        for table in ("text_items", "media_files")
        for event in ("insert", "delete", "update")
    ),
    "DROP TABLE IF EXISTS search_fts",
]

# PostgreSQL: a stored generated tsvector over captions and transcripts, an expression index over file names.
_PG_UP = [
    "ALTER TABLE text_items ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED",
    "CREATE INDEX ix_text_items_search_vector ON text_items USING gin (search_vector)",
    "CREATE INDEX ix_media_files_name_search ON media_files USING gin ("
    "to_tsvector('simple'::regconfig, translate(regexp_replace(path, '^.*/', ''), '._-', '   ')))",
]
_PG_DOWN = [
    "DROP INDEX IF EXISTS ix_media_files_name_search",
    "DROP INDEX IF EXISTS ix_text_items_search_vector",
    "ALTER TABLE text_items DROP COLUMN IF EXISTS search_vector",
]


def _statements(sqlite: list[str], postgres: list[str]) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite
    if dialect == "postgresql":
        return postgres
    return []  # other databases: keyword search is unavailable, dense search still works


def upgrade() -> None:
    for statement in _statements(_SQLITE_UP, _PG_UP):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(_SQLITE_DOWN, _PG_DOWN):
        op.execute(statement)
