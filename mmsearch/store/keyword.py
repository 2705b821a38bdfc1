"""Keyword search over captions, transcripts and file names: SQLite FTS5 (BM25) or PostgreSQL full text.

Both answer the same question: which text items (and file names) match any of the query's words, best
first. The structures behind them are created by migration 0003 and kept in step by the database.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import text

from mmsearch.errors import ConfigError

NAME = "name"
"""The pseudo-kind of file-name matches (next to ``caption`` and ``transcript``)."""
_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_TOKENS = 32

_SQLITE = """
SELECT f.rowid AS rowid, f.file_id AS file_id, -bm25(search_fts) AS score, t.kind AS kind
FROM search_fts AS f LEFT JOIN text_items AS t ON t.id = f.rowid
WHERE search_fts MATCH :query AND ((f.rowid < 0 AND :names) OR t.kind IN ({kinds}))
ORDER BY bm25(search_fts) LIMIT :limit
"""
_POSTGRES_TEXTS = """
SELECT t.id AS rowid, t.file_id AS file_id, ts_rank_cd(t.search_vector, q) AS score, t.kind AS kind
FROM text_items AS t, to_tsquery('english'::regconfig, :query) AS q
WHERE t.search_vector @@ q AND t.kind IN ({kinds})
"""
_POSTGRES_NAMES = """
SELECT -m.id AS rowid, m.id AS file_id, ts_rank_cd({vector}, q) AS score, 'name' AS kind
FROM media_files AS m, to_tsquery('simple'::regconfig, :query) AS q
WHERE {vector} @@ q
"""
_PG_NAME_VECTOR = "to_tsvector('simple'::regconfig, translate(regexp_replace(m.path, '^.*/', ''), '._-', '   '))"


@dataclass(frozen=True)
class KeywordMatch:
    """A matching text item (``item_id``) or file name (``item_id`` None) of a file; higher scores are better."""

    file_id: int
    item_id: int | None
    kind: str
    score: float


def query_tokens(query: str) -> list[str]:
    """The words of a query, lower-cased, in order, without repeats (at most 32)."""
    return list(dict.fromkeys(token.lower() for token in _TOKEN.findall(query)))[:_MAX_TOKENS]


def keyword_search(
    engine: SqlEngine, query: str, limit: int, kinds: Collection[str] = ("caption", "transcript", NAME)
) -> list[KeywordMatch]:
    """Items and file names matching ANY word of ``query`` (BM25 / ts_rank_cd), best first, at most ``limit``."""
    tokens = query_tokens(query)
    text_kinds = sorted(kind for kind in kinds if kind != NAME)
    if not tokens or limit < 1 or not (text_kinds or NAME in kinds):
        return []
    dialect = engine.dialect.name
    if dialect == "sqlite":
        statement, match = _sqlite_statement(text_kinds), " OR ".join(f'"{token}"' for token in tokens)
        params = {"query": match, "limit": limit, "names": NAME in kinds}
    elif dialect == "postgresql":
        statement, match = _postgres_statement(text_kinds, NAME in kinds), " | ".join(tokens)
        params = {"query": match, "limit": limit}
    else:
        raise ConfigError(f"keyword search needs SQLite or PostgreSQL, not {dialect}")
    params.update({f"kind{i}": kind for i, kind in enumerate(text_kinds)})
    with engine.connect() as connection:
        rows = connection.execute(statement, params).all()
    return [
        KeywordMatch(int(row.file_id), int(row.rowid) if row.rowid > 0 else None, row.kind or NAME, float(row.score))
        for row in rows
    ]


def _kind_params(kinds: list[str]) -> str:
    return ", ".join(f":kind{i}" for i in range(len(kinds))) or "NULL"


def _sqlite_statement(kinds: list[str]):
    return _sqlite_text(tuple(kinds))


def _postgres_statement(kinds: list[str], names: bool):
    return _postgres_text(tuple(kinds), names)


@functools.lru_cache(maxsize=32)
def _sqlite_text(kinds: tuple[str, ...]):
    """Built once per kind set: constructing the statement costs more than running it."""
    return text(_SQLITE.format(kinds=_kind_params(list(kinds))))


@functools.lru_cache(maxsize=32)
def _postgres_text(kinds: tuple[str, ...], names: bool):
    parts = []
    if kinds:
        parts.append(_POSTGRES_TEXTS.format(kinds=_kind_params(list(kinds))))
    if names:
        parts.append(_POSTGRES_NAMES.format(vector=_PG_NAME_VECTOR))
    return text(" UNION ALL ".join(parts) + " ORDER BY score DESC LIMIT :limit")
