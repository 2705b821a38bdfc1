"""Keyword search over captions, transcripts and file names: SQLite FTS5 (BM25) or PostgreSQL full text.

Both answer the same question: which text items (and file names) match any of the query's words, best
first. The structures behind them are created by migration 0003 and kept in step by the database.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from mmsearch.errors import ConfigError
from mmsearch.kinds import CAPTION, TRANSCRIPT
from mmsearch.store.sql_reads import RowSource

NAME = "name"
"""The pseudo-kind of file-name matches (next to ``caption`` and ``transcript``)."""
_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_TOKENS = 32
_STOP_WORDS = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself
    it its itself they them their theirs themselves what which who whom this that these those am is are was were be
    been being have has had having do does did doing a an the and but if or because as until while of at by for with
    about against between into through during before after above below to from up down in out on off over under
    again further then once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())
"""PostgreSQL's English stop words (Snowball), which its ``english`` text search drops: SQLite drops the same
ones, so both backends match alike. Nearly every caption contains some of them, so matching them costs a scan
of the whole table (3 ms for 1,800 texts) for a BM25 weight of about zero."""

_SQLITE = """
SELECT f.rowid, f.file_id, -bm25(search_fts), t.kind
FROM search_fts AS f LEFT JOIN text_items AS t ON t.id = f.rowid
WHERE search_fts MATCH ? AND ((f.rowid < 0 AND ?) OR t.kind IN (?))
ORDER BY bm25(search_fts) LIMIT ?
"""
_POSTGRES_TEXTS = """
SELECT t.id AS rowid, t.file_id AS file_id, ts_rank_cd(t.search_vector, q) AS score, t.kind AS kind
FROM text_items AS t, to_tsquery('english'::regconfig, ?) AS q
WHERE t.search_vector @@ q AND t.kind IN (?)
"""
_POSTGRES_NAMES = """
SELECT -m.id AS rowid, m.id AS file_id, ts_rank_cd({vector}, q) AS score, 'name' AS kind
FROM media_files AS m, to_tsquery('simple'::regconfig, ?) AS q
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


KeywordSource = Callable[[str, int, Collection[str]], "list[KeywordMatch]"]
"""``(query, limit, kinds) -> matches``: another keyword engine (``mmsearch.store.keyword_tantivy``)."""


def query_tokens(query: str) -> list[str]:
    """The words of a query, lower-cased, in order, without repeats (at most 32)."""
    return list(dict.fromkeys(token.lower() for token in _TOKEN.findall(query)))[:_MAX_TOKENS]


def search_tokens(query: str) -> list[str]:
    """The words keyword search looks for: :func:`query_tokens` less stop words (all of them if only stop
    words remain, so "the who" still finds something)."""
    tokens = query_tokens(query)
    return [token for token in tokens if token not in STOP_WORDS] or tokens


def keyword_search(
    reads: RowSource,
    query: str,
    limit: int,
    kinds: Collection[str] = (CAPTION, TRANSCRIPT, NAME),
    engine: KeywordSource | None = None,
) -> list[KeywordMatch]:
    """Items and file names matching ANY word of ``query`` (BM25 / ts_rank_cd), best first, at most ``limit``.

    Stop words are left out (see :func:`search_tokens`). ``engine``, when given, answers instead of the database's
    full text (the Tantivy index)."""
    if engine is not None:
        return engine(query, limit, kinds)
    tokens = search_tokens(query)
    text_kinds = sorted(kind for kind in kinds if kind != NAME)
    names = NAME in kinds
    if not tokens or limit < 1 or not (text_kinds or names):
        return []
    if reads.dialect == "sqlite":
        match = " OR ".join(f'"{token}"' for token in tokens)
        rows = reads.rows(_SQLITE, [match, names, text_kinds, limit])
    elif reads.dialect == "postgresql":
        match = " | ".join(tokens)
        params: list[object] = [match, text_kinds] if text_kinds else []
        rows = reads.rows(_postgres_sql(bool(text_kinds), names), [*params, *([match] if names else []), limit])
    else:
        raise ConfigError(f"keyword search needs SQLite or PostgreSQL, not {reads.dialect}")
    return [
        KeywordMatch(int(file_id), int(rowid) if rowid > 0 else None, kind or NAME, float(score))
        for rowid, file_id, score, kind in rows
    ]


@functools.lru_cache(maxsize=4)
def _postgres_sql(texts: bool, names: bool) -> str:
    parts = [_POSTGRES_TEXTS] if texts else []
    if names:
        parts.append(_POSTGRES_NAMES.format(vector=_PG_NAME_VECTOR))
    return " UNION ALL ".join(parts) + " ORDER BY score DESC LIMIT ?"
