"""A SQLite home's :class:`~mmsearch.store.sql_reads.QueryStore` on the standard library's ``sqlite3``: a query
reads (and writes its query-vector cache) without importing SQLAlchemy (~0.19 s of a cold query's imports).

It runs :class:`~mmsearch.store.sql_reads.SqlReads`' statements, the ones the SQLAlchemy store runs, on connections
set up as :func:`mmsearch.store.database.connect` sets up SQLAlchemy's (WAL, ``synchronous=NORMAL``, foreign keys,
a 10 s busy timeout): a reader never waits for a writer. It is used only for a database file whose schema is at
:data:`SCHEMA_HEAD` (read from ``alembic_version``, no Alembic); anything else opens the SQLAlchemy store, which
migrates. Whatever it does not do itself (an index rebuild, any write but the query cache) goes to the SQLAlchemy
store of the same file, opened on first need (:attr:`SqliteStore.full`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import numpy as np

from mmsearch.store.reads import Param, expanded
from mmsearch.store.records import vector_to_bytes
from mmsearch.store.sql_reads import QUERY_CACHE_LIMIT, SqlReads, text_hash

if TYPE_CHECKING:
    from mmsearch.store.repository import MetadataStore

SCHEMA_HEAD = "0007_float16_vectors"
"""The newest migration's revision (``migrations/versions``); a test keeps it in step with Alembic's head."""
_PREFIX = "sqlite:///"


def sqlite_pragmas(wal: bool = True) -> tuple[str, ...]:
    """What every connection to a home's SQLite file runs first, here and in SQLAlchemy's engine
    (:func:`mmsearch.store.database.connect`): WAL (not for an in-memory database), foreign keys, a 10 s busy
    timeout."""
    journal = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL") if wal else ()
    return (*journal, "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=10000")


_CACHE_INSERT = (
    "INSERT INTO query_cache (model_id, text_hash, vector, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_CACHE_EVICT = "DELETE FROM query_cache WHERE id <= (SELECT max(id) FROM query_cache) - ?"


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (as SQLAlchemy's ``make_url`` reads it); None for any other URL
    (another database or driver, query options, in memory)."""
    if not url.startswith(_PREFIX) or "?" in url:
        return None
    path = unquote(url[len(_PREFIX) :])
    return path if path not in ("", ":memory:") else None


def database_name(path: str) -> str:
    """``sqlite:///PATH`` as SQLAlchemy renders it (``URL.render_as_string``), for derived indexes' stamps."""
    return _PREFIX + quote(path, safe=" +/")


class SqliteRows:
    """A :class:`~mmsearch.store.sql_reads.RowSource` on sqlite3: a connection per concurrent call, kept for reuse
    (autocommit: every statement sees the latest commit)."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def rows(self, sql: str, params: Sequence[Param] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``sql`` (``?`` placeholders); a list parameter expands its ``IN (?)``."""
        statement, flat = expanded(sql, params)
        with self.connection() as connection:
            return connection.execute(statement, flat).fetchall()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """An idle connection (or a new one) for the time of the block."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connect()
        try:
            yield connection
        finally:
            with self._lock:
                if self._closed:
                    connection.close()
                else:
                    self._idle.append(connection)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in sqlite_pragmas():
                connection.execute(pragma).fetchall()
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        """Close the idle connections (one in use is closed when it comes back)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class SqliteStore(SqlReads):
    """The query side's store of a SQLite file at the schema's head; see the module docstring."""

    def __init__(self, path: str, opener: Callable[[], MetadataStore]) -> None:
        self.rows_source = SqliteRows(path)
        super().__init__(self.rows_source)
        self.path = path
        self._opener = opener
        self._full: MetadataStore | None = None
        self._lock = threading.Lock()

    @classmethod
    def at_head(cls, path: str, opener: Callable[[], MetadataStore]) -> SqliteStore | None:
        """The store of the file at ``path`` when its schema is at :data:`SCHEMA_HEAD`, else None (no version
        table, an older or newer revision: the SQLAlchemy store decides). A damaged file raises."""
        store = cls(path, opener)
        try:
            revisions = store.reads.rows("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError:  # no version table
            revisions = []
        if revisions != [(SCHEMA_HEAD,)]:
            store.close()
            return None
        return store

    @property
    def full(self) -> MetadataStore:
        """The SQLAlchemy store of the same file, opened (and checked at the head) on first need."""
        with self._lock:
            if self._full is None:
                self._full = self._opener()
            return self._full

    @property
    def full_open(self) -> bool:
        """Whether the SQLAlchemy store was opened (something this store does not do was needed)."""
        return self._full is not None

    @property
    def database_name(self) -> str:
        return database_name(self.path)

    @property
    def one_connection(self) -> bool:
        return False

    def cache_query_vectors(self, model_id: int, vectors: dict[str, np.ndarray]) -> None:
        """As :meth:`MetadataStore.cache_query_vectors`: first writer wins; past the limit the oldest go."""
        if not vectors:
            return
        now = sqlite_timestamp(datetime.now(timezone.utc))
        rows = [(model_id, text_hash(text), vector_to_bytes(vector), now) for text, vector in vectors.items()]
        with self.rows_source.connection() as connection, contextlib.suppress(sqlite3.IntegrityError):
            connection.execute("BEGIN")  # another process cached the same text first (IntegrityError): nothing lost
            try:
                connection.executemany(_CACHE_INSERT, rows)
                connection.execute(_CACHE_EVICT, [QUERY_CACHE_LIMIT])  # ids grow: one range delete drops the oldest
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:  # never back to the pool inside a transaction (stale reads)
                    connection.execute("ROLLBACK")
                raise

    def iter_vectors(
        self, model_id: int, collection: str, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) pair of a collection (an index rebuild): read by the SQLAlchemy store."""
        return self.full.iter_vectors(model_id, collection, batch)

    def close(self) -> None:
        """Close the connections, and the SQLAlchemy store's if it was opened."""
        self.rows_source.close()
        with self._lock:
            full, self._full = self._full, None
        if full is not None:
            full.close()


def sqlite_timestamp(moment: datetime) -> str:
    """A time as SQLAlchemy's SQLite ``DateTime`` stores it (the zone dropped, microseconds kept)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
