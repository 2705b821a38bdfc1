"""Reads of the metadata database: models, files, texts, vectors, settings. One short transaction per call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mmsearch.identity import ModelIdentity
from mmsearch.kinds import IMAGE
from mmsearch.pathnames import from_stored
from mmsearch.store.models import Embedding, MediaFile, ModelRecord, Setting, TextItemRow
from mmsearch.store.reads import DriverReads
from mmsearch.store.records import KnownFile, StoredFile, StoredText, embedding_from_bytes, vector_from_bytes

# The query path's statements, run through the driver (mmsearch.store.reads): "?" placeholders, and a list
# parameter fills an "IN (?)". Built once, as plain SQL.
_SETTING_VALUE = "SELECT value FROM settings WHERE key = ?"
_SETTING_VALUES = "SELECT key, value FROM settings WHERE key IN (?)"
_FILE_COLUMNS = "id, path, kind, width, height, size, mtime_ns, taken_at"
_FILES_BY_ID = f"SELECT {_FILE_COLUMNS} FROM media_files WHERE id IN (?)"
_FILES_AFTER_ID = f"SELECT {_FILE_COLUMNS} FROM media_files WHERE id > ? ORDER BY id LIMIT ?"
_TEXT_COLUMNS = (
    TextItemRow.id,
    TextItemRow.file_id,
    TextItemRow.kind,
    TextItemRow.source,
    TextItemRow.text,
    TextItemRow.start_s,
    TextItemRow.end_s,
    TextItemRow.at_s,
)
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

ACTIVE_MODEL_KEY = "active_model_id"
GENERATION_KEY = "index_generation"


class StoreReads:
    """The reading side of :class:`~mmsearch.store.repository.MetadataStore` (and its connections)."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.reads = DriverReads(engine)
        self._active: tuple[int, ModelIdentity] | None = None

    def session(self) -> Session:
        return self._sessions()

    # -- models ---------------------------------------------------------------------------
    def active_model(self) -> tuple[int, ModelIdentity] | None:
        """The model the index is built with, if anything was ever ingested.

        Once set it never changes (:meth:`adopt_model` refuses a second model), so it is read once.
        """
        if self._active is None:
            with self.session() as session:
                value = session.get(Setting, ACTIVE_MODEL_KEY)
                record = session.get(ModelRecord, int(value.value)) if value is not None else None
                self._active = (record.id, _identity(record)) if record else None
        return self._active

    # -- files ----------------------------------------------------------------------------
    def files_under(self, root: str) -> dict[str, KnownFile]:
        """Every known file whose path lies under the folder ``root``."""
        prefix = root.rstrip("/") + "/"
        query = select(
            MediaFile.id,
            MediaFile.path,
            MediaFile.size,
            MediaFile.mtime_ns,
            MediaFile.content_hash,
            MediaFile.kind,
            MediaFile.sidecar_sig,
            MediaFile.width,
            MediaFile.height,
            MediaFile.taken_at,
        ).where(MediaFile.path.startswith(prefix, autoescape=True))
        with self.engine.connect() as connection:  # Core rows, no ORM session: a third faster at 100k files
            return {row[1]: KnownFile(*tuple(row)) for row in connection.execute(query)}

    def hashes_with_vectors(self, model_id: int, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` already have a vector under the model."""
        wanted = list(set(hashes))
        found: set[str] = set()
        with self.session() as session:
            for chunk in chunked(wanted, 500):
                found.update(
                    session.scalars(
                        select(Embedding.content_hash).where(
                            Embedding.model_id == model_id, Embedding.content_hash.in_(chunk)
                        )
                    )
                )
        return found

    def vectors_for_hashes(self, model_id: int, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by content hash."""
        out: dict[str, np.ndarray] = {}
        with self.session() as session:
            for chunk in chunked(list(set(hashes)), 500):
                rows = session.execute(
                    select(Embedding.content_hash, Embedding.vector).where(
                        Embedding.model_id == model_id, Embedding.content_hash.in_(chunk)
                    )
                )
                out.update({row.content_hash: embedding_from_bytes(row.vector) for row in rows})
        return out

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
        out: dict[int, np.ndarray] = {}
        for chunk in chunked([int(i) for i in file_ids], 500):
            rows = self.reads.rows(_IMAGE_VECTORS, [model_id, chunk])
            out.update({file_id: embedding_from_bytes(vector) for file_id, vector in rows})
        return out

    def text_item_ids_of(self, file_ids: Iterable[int], kind: str) -> dict[int, list[int]]:
        """Per file, the ids of its text items of ``kind`` (no vectors: the index holds those)."""
        out: dict[int, list[int]] = {}
        for chunk in chunked([int(i) for i in file_ids], 500):
            for item_id, file_id in self.reads.rows(_TEXT_ITEM_IDS, [kind, chunk]):
                out.setdefault(file_id, []).append(item_id)
        return out

    def vectors_of_texts(self, model_id: int, item_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vector of each given text item."""
        out: dict[int, np.ndarray] = {}
        for chunk in chunked([int(i) for i in item_ids], 500):
            rows = self.reads.rows(_VECTORS_OF_TEXTS, [model_id, chunk])
            out.update({item_id: embedding_from_bytes(vector) for item_id, vector in rows})
        return out

    def get_texts(self, ids: Iterable[int]) -> dict[int, StoredText]:
        """Text items by id (ids that no longer exist are left out)."""
        out: dict[int, StoredText] = {}
        for chunk in chunked([int(i) for i in ids], 500):
            out.update({row[0]: StoredText(*row) for row in self.reads.rows(_TEXTS_BY_ID, [chunk])})
        return out

    def texts_of_files(self, file_ids: Iterable[int]) -> dict[int, list[StoredText]]:
        """Every text item of the given files, in order, by file id."""
        out: dict[int, list[StoredText]] = {}
        query = select(*_TEXT_COLUMNS).order_by(TextItemRow.kind, TextItemRow.id)
        with self.engine.connect() as connection:
            for chunk in chunked([int(i) for i in file_ids], 500):
                for row in connection.execute(query.where(TextItemRow.file_id.in_(chunk))):
                    out.setdefault(row.file_id, []).append(StoredText(*row))
        return out

    def iter_vectors(
        self, model_id: int, collection: str, batch: int = 4096
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) pair of a collection under the model, in chunks, for rebuilding an index."""
        if collection == IMAGE:
            yield from self.iter_file_vectors(model_id, batch)
            return
        query = (
            select(TextItemRow.id, Embedding.vector)
            .join(Embedding, Embedding.content_hash == TextItemRow.content_hash)
            .where(Embedding.model_id == model_id, TextItemRow.kind == collection)
            .order_by(TextItemRow.id)
        )
        yield from self._iter_id_vectors(query, batch)

    def iter_file_vectors(self, model_id: int, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (file ids, vectors) pair of images under the model, in chunks, for rebuilding an index."""
        query = (
            select(MediaFile.id, Embedding.vector)
            .join(Embedding, Embedding.content_hash == MediaFile.content_hash)
            .where(Embedding.model_id == model_id, MediaFile.kind == IMAGE)
            .order_by(MediaFile.id)
        )
        yield from self._iter_id_vectors(query, batch)

    def _iter_id_vectors(self, query: Any, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with self.session() as session:
            result = session.execute(query.execution_options(yield_per=batch))
            for rows in result.partitions(batch):
                ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
                vectors = np.stack([embedding_from_bytes(row.vector) for row in rows])
                yield ids, vectors

    # -- facts ----------------------------------------------------------------------------
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

    def counts(self) -> dict[str, Any]:
        """Files and text items by kind, vectors and total bytes, for ``status``."""
        with self.session() as session:
            by_kind = dict(session.execute(select(MediaFile.kind, func.count()).group_by(MediaFile.kind)).all())
            texts = dict(session.execute(select(TextItemRow.kind, func.count()).group_by(TextItemRow.kind)).all())
            total_bytes = session.scalar(select(func.coalesce(func.sum(MediaFile.size), 0)))
            vectors = session.scalar(select(func.count()).select_from(Embedding))
        return {
            "files_by_kind": by_kind,
            "texts_by_kind": texts,
            "files_bytes": int(total_bytes or 0),
            "vectors": int(vectors or 0),
        }

    # -- query cache ----------------------------------------------------------------------
    def cached_query_vectors(self, model_id: int, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached text vectors under the model, by text."""
        by_hash = {text_hash(text): text for text in texts}
        out: dict[str, np.ndarray] = {}
        for chunk in chunked(list(by_hash), 500):
            rows = self.reads.rows(_CACHED_QUERIES, [model_id, chunk])
            out.update({by_hash[text_hash]: vector_from_bytes(vector) for text_hash, vector in rows})
        return out


def _identity(record: ModelRecord) -> ModelIdentity:
    return ModelIdentity(
        name=record.name,
        pretrained=record.pretrained,
        dim=record.dim,
        preprocess=json.loads(record.preprocess_json),
    )


def generation_key(collection: str) -> str:
    """The settings key of a collection's generation (the image one keeps its original name)."""
    return GENERATION_KEY if collection == IMAGE else f"{GENERATION_KEY}:{collection}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chunked(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
