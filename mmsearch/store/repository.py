"""Reads and writes of the metadata database. One short transaction per call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import ModelMismatchError
from mmsearch.pathnames import from_stored
from mmsearch.store.models import Embedding, MediaFile, ModelRecord, QueryCacheEntry, Setting, TextItemRow, utcnow
from mmsearch.store.reads import DriverReads
from mmsearch.store.text_items import TextRecord, replace_text_groups

# The query path's statements, run through the driver (mmsearch.store.reads): "?" placeholders, and a list
# parameter fills an "IN (?)". Built once, as plain SQL.
_SETTING_VALUE = "SELECT value FROM settings WHERE key = ?"
_SETTING_VALUES = "SELECT key, value FROM settings WHERE key IN (?)"
_FILE_COLUMNS = "id, path, kind, width, height, size, mtime_ns, taken_at"
_FILES_BY_ID = f"SELECT {_FILE_COLUMNS} FROM media_files WHERE id IN (?)"
_TEXT_COLUMNS = (
    TextItemRow.id,
    TextItemRow.file_id,
    TextItemRow.kind,
    TextItemRow.source,
    TextItemRow.text,
    TextItemRow.start_s,
    TextItemRow.end_s,
)
_TEXTS_BY_ID = "SELECT id, file_id, kind, source, text, start_s, end_s FROM text_items WHERE id IN (?)"
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
IMAGE = "image"
COLLECTIONS = ("image", "caption", "transcript")
"""The vector indexes: image vectors keyed by file id, caption and transcript vectors keyed by text item id."""
QUERY_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class KnownFile:
    """What the database remembers of a file, enough to decide whether it changed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    kind: str = "image"
    sidecar_sig: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: float | None = None


@dataclass(frozen=True)
class FileRecord:
    """A file to write: its stat, content hash, image size and sidecar signature."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int | None = None
    height: int | None = None
    sidecar_sig: str | None = None
    taken_at: float | None = None


@dataclass(frozen=True)
class StoredText:
    """A caption or transcript segment as search results show it."""

    id: int
    file_id: int
    kind: str
    source: str
    text: str
    start: float | None
    end: float | None


@dataclass
class AssetWrite:
    """What :meth:`MetadataStore.write_assets` changed, for mirroring in the vector indexes."""

    file_ids: list[int]
    generations: dict[str, int]
    added_texts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """Per text kind: (item id, content hash) of every inserted item."""
    removed_texts: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredFile:
    """A file as search results show it."""

    id: int
    path: str
    kind: str
    width: int | None
    height: int | None
    size: int
    mtime_ns: int = 0
    taken_at: float | None = None
    """When the photo was taken (EXIF), Unix seconds, if known."""

    @property
    def time(self) -> float:
        """What time filters compare: the capture time when known, else the file's modification time."""
        return self.taken_at if self.taken_at is not None else self.mtime_ns / 1e9


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """Serialise one vector as little-endian float32."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`vector_to_bytes`."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


class MetadataStore:
    """The database of files, models and vectors: the source of truth."""

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

    def adopt_model(self, identity: ModelIdentity) -> int:
        """Make ``identity`` the active model (first ingest), or check it is the active one."""
        active = self.active_model()
        if active is not None:
            model_id, current = active
            if current.fingerprint != identity.fingerprint:
                raise ModelMismatchError(
                    f"this index was built with {current.spec} (dim {current.dim}); "
                    f"refusing to mix in {identity.spec} (dim {identity.dim}). "
                    "Use the same --model, or a new --home for the other model."
                )
            return model_id
        with self.session() as session, session.begin():
            record = session.scalar(select(ModelRecord).where(ModelRecord.fingerprint == identity.fingerprint))
            if record is None:
                record = ModelRecord(
                    fingerprint=identity.fingerprint,
                    name=identity.name,
                    pretrained=identity.pretrained,
                    dim=identity.dim,
                    preprocess_json=json.dumps(identity.preprocess, sort_keys=True),
                )
                session.add(record)
                session.flush()
            _set(session, ACTIVE_MODEL_KEY, str(record.id))
        self._active = (record.id, identity)
        return record.id

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
        with self.session() as session:
            return {row.path: KnownFile(*row) for row in session.execute(query)}

    def hashes_with_vectors(self, model_id: int, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` already have a vector under the model."""
        wanted = list(set(hashes))
        found: set[str] = set()
        with self.session() as session:
            for chunk in _chunks(wanted, 500):
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
            for chunk in _chunks(list(set(hashes)), 500):
                rows = session.execute(
                    select(Embedding.content_hash, Embedding.vector).where(
                        Embedding.model_id == model_id, Embedding.content_hash.in_(chunk)
                    )
                )
                out.update({row.content_hash: vector_from_bytes(row.vector) for row in rows})
        return out

    def write_assets(
        self,
        model_id: int,
        records: Sequence[FileRecord],
        new_vectors: dict[str, np.ndarray],
        texts: Mapping[str, Mapping[str, Sequence[TextRecord]]] | None = None,
        image_changed: bool = True,
    ) -> AssetWrite:
        """Write files, their new vectors and their text groups in one transaction.

        ``texts`` maps a file path (of ``records`` or already stored) to the text groups to set for it; a group
        whose stored items equal the given ones is left alone, others are replaced whole.
        ``image_changed`` says whether image vectors of these files changed (bumps the image generation).
        """
        now = utcnow()
        with self.session() as session, session.begin():
            _insert_missing_vectors(session, model_id, new_vectors, now)
            ids_by_path = _upsert_files(session, records, now)
            result = AssetWrite([ids_by_path[record.path] for record in records], {})
            others = [path for path in (texts or {}) if path not in ids_by_path]
            for chunk in _chunks(others, 500):
                rows = session.execute(select(MediaFile.path, MediaFile.id).where(MediaFile.path.in_(chunk)))
                ids_by_path.update((path, file_id) for path, file_id in rows)
            texts = {path: groups for path, groups in (texts or {}).items() if path in ids_by_path}
            if texts:
                by_file = {ids_by_path[path]: groups for path, groups in texts.items()}
                result.added_texts, result.removed_texts = replace_text_groups(session, by_file)
            touched = {kind for kind, rows in result.added_texts.items() if rows}
            touched.update(kind for kind, rows in result.removed_texts.items() if rows)
            if image_changed and any(record.kind == IMAGE for record in records):
                touched.add(IMAGE)
            result.generations = _bump_generations(session, touched)
            return result

    def write_files(
        self, model_id: int, records: Sequence[FileRecord], new_vectors: dict[str, np.ndarray]
    ) -> tuple[list[int], int]:
        """Insert or update image files and their new vectors; returns (file ids, image generation)."""
        written = self.write_assets(model_id, records, new_vectors)
        return written.file_ids, written.generations.get(IMAGE, self.generation())

    def touch_files(self, updates: Sequence[tuple[int, int, int]]) -> None:
        """Record a new (size, mtime) for files whose content did not change: ``(id, size, mtime_ns)``."""
        if not updates:
            return
        with self.session() as session, session.begin():
            for file_id, size, mtime_ns in updates:
                session.execute(update(MediaFile).where(MediaFile.id == file_id).values(size=size, mtime_ns=mtime_ns))

    def delete_files(self, ids: Sequence[int]) -> AssetWrite:
        """Forget files and their text items (vectors go in :meth:`collect_garbage`)."""
        result = AssetWrite(list(ids), {})
        with self.session() as session, session.begin():
            for chunk in _chunks(list(ids), 500):
                for item_id, kind in session.execute(
                    select(TextItemRow.id, TextItemRow.kind).where(TextItemRow.file_id.in_(chunk))
                ):
                    result.removed_texts.setdefault(kind, []).append(item_id)
                session.execute(delete(TextItemRow).where(TextItemRow.file_id.in_(chunk)))
                session.execute(delete(MediaFile).where(MediaFile.id.in_(chunk)))
            result.generations = _bump_generations(session, set(COLLECTIONS))
        return result

    def collect_garbage(self, model_id: int) -> int:
        """Delete vectors whose content no file and no text item has any more; returns how many."""
        used_by_files = select(MediaFile.content_hash)
        used_by_texts = select(TextItemRow.content_hash)
        with self.session() as session, session.begin():
            result = session.execute(
                delete(Embedding).where(
                    Embedding.model_id == model_id,
                    Embedding.content_hash.not_in(used_by_files),
                    Embedding.content_hash.not_in(used_by_texts),
                )
            )
            return int(result.rowcount or 0)

    def get_files(self, ids: Iterable[int]) -> dict[int, StoredFile]:
        """Files by id (ids that no longer exist are left out)."""
        out: dict[int, StoredFile] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            for row in self.reads.rows(_FILES_BY_ID, [chunk]):  # plain SQL: the path is in its stored form
                out[row[0]] = StoredFile(row[0], from_stored(row[1]), *row[2:])
        return out

    def image_vectors_of(self, model_id: int, file_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored image vector of each given file that has one."""
        out: dict[int, np.ndarray] = {}
        for chunk in _chunks([int(i) for i in file_ids], 500):
            rows = self.reads.rows(_IMAGE_VECTORS, [model_id, chunk])
            out.update({file_id: vector_from_bytes(vector) for file_id, vector in rows})
        return out

    def text_item_ids_of(self, file_ids: Iterable[int], kind: str) -> dict[int, list[int]]:
        """Per file, the ids of its text items of ``kind`` (no vectors: the index holds those)."""
        out: dict[int, list[int]] = {}
        for chunk in _chunks([int(i) for i in file_ids], 500):
            for item_id, file_id in self.reads.rows(_TEXT_ITEM_IDS, [kind, chunk]):
                out.setdefault(file_id, []).append(item_id)
        return out

    def vectors_of_texts(self, model_id: int, item_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vector of each given text item."""
        out: dict[int, np.ndarray] = {}
        for chunk in _chunks([int(i) for i in item_ids], 500):
            rows = self.reads.rows(_VECTORS_OF_TEXTS, [model_id, chunk])
            out.update({item_id: vector_from_bytes(vector) for item_id, vector in rows})
        return out

    def get_texts(self, ids: Iterable[int]) -> dict[int, StoredText]:
        """Text items by id (ids that no longer exist are left out)."""
        out: dict[int, StoredText] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            out.update({row[0]: StoredText(*row) for row in self.reads.rows(_TEXTS_BY_ID, [chunk])})
        return out

    def texts_of_files(self, file_ids: Iterable[int]) -> dict[int, list[StoredText]]:
        """Every text item of the given files, in order, by file id."""
        out: dict[int, list[StoredText]] = {}
        query = select(*_TEXT_COLUMNS).order_by(TextItemRow.kind, TextItemRow.id)
        with self.engine.connect() as connection:
            for chunk in _chunks([int(i) for i in file_ids], 500):
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
                vectors = np.stack([vector_from_bytes(row.vector) for row in rows])
                yield ids, vectors

    # -- facts ----------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        """A small stored fact, or ``None``."""
        rows = self.reads.rows(_SETTING_VALUE, [key])
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        """Store a small fact."""
        with self.session() as session, session.begin():
            _set(session, key, value)

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
        by_hash = {_text_hash(text): text for text in texts}
        out: dict[str, np.ndarray] = {}
        for chunk in _chunks(list(by_hash), 500):
            rows = self.reads.rows(_CACHED_QUERIES, [model_id, chunk])
            out.update({by_hash[text_hash]: vector_from_bytes(vector) for text_hash, vector in rows})
        return out

    def cache_query_vectors(self, model_id: int, vectors: dict[str, np.ndarray]) -> None:
        """Remember text vectors (first writer wins); past :data:`QUERY_CACHE_LIMIT` the oldest are dropped."""
        if not vectors:
            return
        rows = [
            {
                "model_id": model_id,
                "text_hash": _text_hash(text),
                "vector": vector_to_bytes(vector),
                "created_at": utcnow(),
            }
            for text, vector in vectors.items()
        ]
        table = QueryCacheEntry.__table__
        newest = select(func.max(table.c.id)).scalar_subquery()
        try:
            with self.engine.begin() as connection:
                connection.execute(_insert_ignoring_duplicates(connection.dialect.name, table), rows)
                # Ids grow with every insert, so one range delete on the primary key evicts the oldest entries.
                connection.execute(delete(table).where(table.c.id <= newest - QUERY_CACHE_LIMIT))
        except IntegrityError:  # another process cached the same text first: nothing lost
            pass


def _insert_ignoring_duplicates(dialect: str, table: Any) -> Any:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # other databases: a duplicate raises IntegrityError, which the caller ignores
        from sqlalchemy import insert

        return insert(table)
    return insert(table).on_conflict_do_nothing()


def _identity(record: ModelRecord) -> ModelIdentity:
    return ModelIdentity(
        name=record.name,
        pretrained=record.pretrained,
        dim=record.dim,
        preprocess=json.loads(record.preprocess_json),
    )


def _insert_missing_vectors(session: Session, model_id: int, vectors: dict[str, np.ndarray], now: datetime) -> None:
    if not vectors:
        return
    existing: set[str] = set()
    for chunk in _chunks(list(vectors), 500):
        existing.update(
            session.scalars(
                select(Embedding.content_hash).where(Embedding.model_id == model_id, Embedding.content_hash.in_(chunk))
            )
        )
    rows = [
        {"model_id": model_id, "content_hash": content_hash, "vector": vector_to_bytes(vector), "created_at": now}
        for content_hash, vector in vectors.items()
        if content_hash not in existing
    ]
    if rows:
        session.execute(insert(Embedding), rows)


def _upsert_files(session: Session, records: Sequence[FileRecord], now: datetime) -> dict[str, int]:
    ids_by_path: dict[str, int] = {}
    for chunk in _chunks([record.path for record in records], 500):
        rows = session.execute(select(MediaFile.path, MediaFile.id).where(MediaFile.path.in_(chunk)))
        ids_by_path.update((path, file_id) for path, file_id in rows)
    changed = [
        {"id": ids_by_path[r.path], **_file_values(r), "updated_at": now} for r in records if r.path in ids_by_path
    ]
    if changed:
        session.execute(update(MediaFile), changed)
    added = [{**_file_values(r), "created_at": now, "updated_at": now} for r in records if r.path not in ids_by_path]
    if added:
        inserted = session.execute(
            insert(MediaFile).returning(MediaFile.path, MediaFile.id, sort_by_parameter_order=True), added
        )
        ids_by_path.update((path, file_id) for path, file_id in inserted)
    return ids_by_path


def _file_values(record: FileRecord) -> dict[str, Any]:
    return {
        "path": record.path,
        "kind": record.kind,
        "size": record.size,
        "mtime_ns": record.mtime_ns,
        "content_hash": record.content_hash,
        "width": record.width,
        "height": record.height,
        "sidecar_sig": record.sidecar_sig,
        "taken_at": record.taken_at,
    }


def _set(session: Session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def generation_key(collection: str) -> str:
    """The settings key of a collection's generation (the image one keeps its original name)."""
    return GENERATION_KEY if collection == IMAGE else f"{GENERATION_KEY}:{collection}"


def _bump_generations(session: Session, collections: Iterable[str]) -> dict[str, int]:
    bumped = {}
    for collection in sorted(set(collections)):
        row = session.get(Setting, generation_key(collection))
        bumped[collection] = int(row.value) + 1 if row else 1
        _set(session, generation_key(collection), str(bumped[collection]))
    return bumped


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
