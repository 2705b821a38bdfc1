"""The reads a search makes, as plain SQL over a :class:`RowSource`, and :class:`QueryStore`, the interface the
query side (``search/``, ``index/``, ``models.py``) holds a store by.

Two stores implement it, picked once by :func:`mmsearch.store.opening.open_store`:

* :class:`~mmsearch.store.repository.MetadataStore` (SQLAlchemy): every database, every write;
* :class:`~mmsearch.store.sqlite_store.SqliteStore` (the standard library's ``sqlite3``): a SQLite home at the
  schema's head, so that a cold query imports no SQLAlchemy; what it does not do itself (a write other than the
  query cache, an index rebuild) goes to a ``MetadataStore`` it opens on first need (:attr:`QueryStore.full`).

Both run the same statements of :class:`SqlReads` (only the connection differs), so they read the same records.
Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmsearch.identity import ModelIdentity
from mmsearch.kinds import IMAGE
from mmsearch.pathnames import from_stored
from mmsearch.store.records import StoredFile, StoredText, embedding_from_bytes, vector_from_bytes

if TYPE_CHECKING:
    from mmsearch.store.repository import MetadataStore

ACTIVE_MODEL_KEY = "active_model_id"
GENERATION_KEY = "index_generation"
QUERY_CACHE_LIMIT = 10_000
"""Cached query vectors kept per database; past it the oldest are dropped."""

# "?" placeholders, and a list parameter fills an "IN (?)" (mmsearch.store.reads). Built once, as plain SQL.
_SETTING_VALUE = "SELECT value FROM settings WHERE key = ?"
_SETTING_VALUES = "SELECT key, value FROM settings WHERE key IN (?)"
_MODEL = "SELECT id, name, pretrained, dim, preprocess_json FROM models WHERE id = ?"
_FILE_COLUMNS = "id, path, kind, width, height, size, mtime_ns, taken_at"
_FILES_BY_ID = f"SELECT {_FILE_COLUMNS} FROM media_files WHERE id IN (?)"
_FILES_AFTER_ID = f"SELECT {_FILE_COLUMNS} FROM media_files WHERE id > ? ORDER BY id LIMIT ?"
_TEXTS_BY_ID = "SELECT id, file_id, kind, source, text, start_s, end_s, at_s FROM text_items WHERE id IN (?)"
_IMAGE_VECTORS = (
    "SELECT m.id, e.vector FROM media_files AS m JOIN embeddings AS e ON e.content_hash = m.content_hash "
    "WHERE e.model_id = ? AND m.id IN (?)"
)
_TEXT_ITEM_IDS = "SELECT id, file_id FROM text_items WHERE kind = ? AND file_id IN (?)"
_VECTORS_OF_TEXTS = (
    "SELECT t.id, e.vector FROM text_items AS t JOIN embeddings AS e ON e.content_hash = t.content_hash "
    "WHERE e.model_id = ? AND t.id IN (?)"
)
_CACHED_QUERIES = "SELECT text_hash, vector FROM query_cache WHERE model_id = ? AND text_hash IN (?)"


class RowSource(Protocol):
    """Read-only statements on a DB-API connection: the SQLAlchemy pool's (``DriverReads``) or sqlite3's."""

    dialect: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``sql`` (``?`` placeholders); a list parameter expands its ``IN (?)``."""
        ...


class QueryStore(Protocol):
    """Everything the query side asks of the database (and :attr:`full`, the store for everything else)."""

    reads: RowSource

    @property
    def full(self) -> MetadataStore:
        """The SQLAlchemy store of the same database (itself, or opened now): writes, rebuilds, maintenance."""
        ...

    @property
    def database_name(self) -> str:
        """The database's URL as SQLAlchemy renders it with the password hidden (what derived indexes record)."""
        ...

    @property
    def one_connection(self) -> bool:
        """True when every thread shares one connection (in-memory SQLite): work on it stays in one thread."""
        ...

    def active_model(self) -> tuple[int, ModelIdentity] | None: ...
    def setting(self, key: str) -> str | None: ...
    def generation(self, collection: str = IMAGE) -> int: ...
    def generations(self, collections: Iterable[str]) -> dict[str, int]: ...
    def get_files(self, ids: Iterable[int]) -> dict[int, StoredFile]: ...
    def any_file(self, accepts: Callable[[StoredFile], bool], batch: int = 2000) -> bool: ...
    def image_vectors_of(self, model_id: int, file_ids: Iterable[int]) -> dict[int, np.ndarray]: ...
    def text_item_ids_of(self, file_ids: Iterable[int], kind: str) -> dict[int, list[int]]: ...
    def vectors_of_texts(self, model_id: int, item_ids: Iterable[int]) -> dict[int, np.ndarray]: ...
    def get_texts(self, ids: Iterable[int]) -> dict[int, StoredText]: ...
    def cached_query_vectors(self, model_id: int, texts: Sequence[str]) -> dict[str, np.ndarray]: ...
    def cache_query_vectors(self, model_id: int, vectors: dict[str, np.ndarray]) -> None: ...
    def iter_vectors(
        self, model_id: int, collection: str, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...
    def close(self) -> None: ...


class SqlReads:
    """The statements of :class:`QueryStore`'s reads, run on ``reads``; shared by both stores."""

    def __init__(self, reads: RowSource) -> None:
        self.reads = reads
        self._active: tuple[int, ModelIdentity] | None = None

    def active_model(self) -> tuple[int, ModelIdentity] | None:
        """The model the index is built with, if anything was ever ingested.

        Once set it never changes (``adopt_model`` refuses a second model), so it is read once.
        """
        if self._active is None:
            value = self.setting(ACTIVE_MODEL_KEY)
            rows = self.reads.rows(_MODEL, [int(value)]) if value is not None else []
            if rows:
                model_id, name, pretrained, dim, preprocess = rows[0]
                identity = ModelIdentity(name=name, pretrained=pretrained, dim=dim, preprocess=json.loads(preprocess))
                self._active = (model_id, identity)
        return self._active

    def setting(self, key: str) -> str | None:
        """A small stored fact, or ``None``."""
        rows = self.reads.rows(_SETTING_VALUE, [key])
        return rows[0][0] if rows else None

    def generation(self, collection: str = IMAGE) -> int:
        """A counter bumped by every change of a collection's vectors; saved indexes record the one they match."""
        value = self.setting(generation_key(collection))
        return int(value) if value is not None else 0

    def generations(self, collections: Iterable[str]) -> dict[str, int]:
        """:meth:`generation` of several collections in one query (what a search checks)."""
        keys = {generation_key(collection): collection for collection in collections}
        rows = dict(self.reads.rows(_SETTING_VALUES, [list(keys)]))
        return {collection: int(rows.get(key) or 0) for key, collection in keys.items()}

    def get_files(self, ids: Iterable[int]) -> dict[int, StoredFile]:
        """Files by id (ids that no longer exist are left out)."""
        out: dict[int, StoredFile] = {}
        for chunk in chunked([int(i) for i in ids], 500):
            for row in self.reads.rows(_FILES_BY_ID, [chunk]):  # plain SQL: the path is in its stored form
                out[row[0]] = StoredFile(row[0], from_stored(row[1]), *row[2:])
        return out

    def any_file(self, accepts: Callable[[StoredFile], bool], batch: int = 2000) -> bool:
        """Whether any stored file passes ``accepts`` (read in batches of ids, stopping at the first)."""
        last = -1
        while True:
            rows = self.reads.rows(_FILES_AFTER_ID, [last, batch])
            if not rows:
                return False
            if any(accepts(StoredFile(*row)) for row in rows):
                return True
            last = rows[-1][0]

    def image_vectors_of(self, model_id: int, file_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored image vector of each given file that has one."""
        return self._vectors(_IMAGE_VECTORS, model_id, file_ids)

    def text_item_ids_of(self, file_ids: Iterable[int], kind: str) -> dict[int, list[int]]:
        """Per file, the ids of its text items of ``kind`` (no vectors: the index holds those)."""
        out: dict[int, list[int]] = {}
        for chunk in chunked([int(i) for i in file_ids], 500):
            for item_id, file_id in self.reads.rows(_TEXT_ITEM_IDS, [kind, chunk]):
                out.setdefault(file_id, []).append(item_id)
        return out

    def vectors_of_texts(self, model_id: int, item_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vector of each given text item."""
        return self._vectors(_VECTORS_OF_TEXTS, model_id, item_ids)

    def _vectors(self, sql: str, model_id: int, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """``sql``'s (id, vector) rows for ``model_id`` and ``ids``, 500 ids a statement, as float vectors by id."""
        out: dict[int, np.ndarray] = {}
        for chunk in chunked([int(i) for i in ids], 500):
            out.update({key: embedding_from_bytes(vector) for key, vector in self.reads.rows(sql, [model_id, chunk])})
        return out

    def get_texts(self, ids: Iterable[int]) -> dict[int, StoredText]:
        """Text items by id (ids that no longer exist are left out)."""
        out: dict[int, StoredText] = {}
        for chunk in chunked([int(i) for i in ids], 500):
            out.update({row[0]: StoredText(*row) for row in self.reads.rows(_TEXTS_BY_ID, [chunk])})
        return out

    def cached_query_vectors(self, model_id: int, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached text vectors under the model, by text."""
        by_hash = {text_hash(text): text for text in texts}
        out: dict[str, np.ndarray] = {}
        for chunk in chunked(list(by_hash), 500):
            rows = self.reads.rows(_CACHED_QUERIES, [model_id, chunk])
            out.update({by_hash[text_hash]: vector_from_bytes(vector) for text_hash, vector in rows})
        return out


def generation_key(collection: str) -> str:
    """The settings key of a collection's generation (the image one keeps its original name)."""
    return GENERATION_KEY if collection == IMAGE else f"{GENERATION_KEY}:{collection}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chunked(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
