"""Reads and writes of the metadata database. One short transaction per call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import ModelMismatchError
from mmsearch.store.models import Embedding, MediaFile, ModelRecord, QueryCacheEntry, Setting, utcnow

# Statements on the query path, built once: building them per call costs more than running them.
_SETTING_VALUE = select(Setting.value).where(Setting.key == bindparam("key"))
_FILES_BY_ID = select(
    MediaFile.id, MediaFile.path, MediaFile.kind, MediaFile.width, MediaFile.height, MediaFile.size
).where(MediaFile.id.in_(bindparam("ids", expanding=True)))
_CACHED_QUERIES = select(QueryCacheEntry.text_hash, QueryCacheEntry.vector).where(
    QueryCacheEntry.model_id == bindparam("model_id"),
    QueryCacheEntry.text_hash.in_(bindparam("hashes", expanding=True)),
)

ACTIVE_MODEL_KEY = "active_model_id"
GENERATION_KEY = "index_generation"
QUERY_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class KnownFile:
    """What the database remembers of a file, enough to decide whether it changed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str


@dataclass(frozen=True)
class FileRecord:
    """A file to write: its stat, content hash and image size."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class StoredFile:
    """A file as search results show it."""

    id: int
    path: str
    kind: str
    width: int | None
    height: int | None
    size: int


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
        query = select(MediaFile.id, MediaFile.path, MediaFile.size, MediaFile.mtime_ns, MediaFile.content_hash).where(
            MediaFile.path.startswith(prefix, autoescape=True)
        )
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

    def write_files(
        self, model_id: int, records: Sequence[FileRecord], new_vectors: dict[str, np.ndarray]
    ) -> tuple[list[int], int]:
        """Insert or update files and store new vectors in one transaction; returns (file ids, generation)."""
        now = utcnow()
        with self.session() as session, session.begin():
            _insert_missing_vectors(session, model_id, new_vectors, now)
            ids_by_path: dict[str, int] = {}
            for chunk in _chunks([record.path for record in records], 500):
                rows = session.execute(select(MediaFile.path, MediaFile.id).where(MediaFile.path.in_(chunk)))
                ids_by_path.update((path, file_id) for path, file_id in rows)
            changed = [
                {"id": ids_by_path[r.path], **_file_values(r), "updated_at": now}
                for r in records
                if r.path in ids_by_path
            ]
            if changed:
                session.execute(update(MediaFile), changed)
            added = [
                {**_file_values(r), "created_at": now, "updated_at": now} for r in records if r.path not in ids_by_path
            ]
            if added:
                inserted = session.execute(
                    insert(MediaFile).returning(MediaFile.path, MediaFile.id, sort_by_parameter_order=True), added
                )
                ids_by_path.update((path, file_id) for path, file_id in inserted)
            return [ids_by_path[record.path] for record in records], _bump_generation(session)

    def touch_files(self, updates: Sequence[tuple[int, int, int]]) -> None:
        """Record a new (size, mtime) for files whose content did not change: ``(id, size, mtime_ns)``."""
        if not updates:
            return
        with self.session() as session, session.begin():
            for file_id, size, mtime_ns in updates:
                session.execute(update(MediaFile).where(MediaFile.id == file_id).values(size=size, mtime_ns=mtime_ns))

    def delete_files(self, ids: Sequence[int]) -> int:
        """Forget files (their vectors go in :meth:`collect_garbage`); returns the new generation."""
        with self.session() as session, session.begin():
            for chunk in _chunks(list(ids), 500):
                session.execute(delete(MediaFile).where(MediaFile.id.in_(chunk)))
            return _bump_generation(session)

    def collect_garbage(self, model_id: int) -> int:
        """Delete vectors whose content no file has any more; returns how many."""
        used = select(MediaFile.content_hash)
        with self.session() as session, session.begin():
            result = session.execute(
                delete(Embedding).where(Embedding.model_id == model_id, Embedding.content_hash.not_in(used))
            )
            return int(result.rowcount or 0)

    def get_files(self, ids: Iterable[int]) -> dict[int, StoredFile]:
        """Files by id (ids that no longer exist are left out)."""
        out: dict[int, StoredFile] = {}
        with self.engine.connect() as connection:
            for chunk in _chunks([int(i) for i in ids], 500):
                rows = connection.execute(_FILES_BY_ID, {"ids": chunk})
                out.update({row.id: StoredFile(*row) for row in rows})
        return out

    def iter_file_vectors(self, model_id: int, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (file ids, vectors) pair under the model, in chunks, for rebuilding an index."""
        query = (
            select(MediaFile.id, Embedding.vector)
            .join(Embedding, Embedding.content_hash == MediaFile.content_hash)
            .where(Embedding.model_id == model_id)
            .order_by(MediaFile.id)
        )
        with self.session() as session:
            result = session.execute(query.execution_options(yield_per=batch))
            for rows in result.partitions(batch):
                ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
                vectors = np.stack([vector_from_bytes(row.vector) for row in rows])
                yield ids, vectors

    # -- facts ----------------------------------------------------------------------------
    def generation(self) -> int:
        """A counter bumped by every change of files; saved indexes record the one they match."""
        with self.engine.connect() as connection:
            value = connection.execute(_SETTING_VALUE, {"key": GENERATION_KEY}).scalar()
        return int(value) if value is not None else 0

    def counts(self) -> dict[str, Any]:
        """Files by kind, vectors and total bytes, for ``status``."""
        with self.session() as session:
            by_kind = dict(session.execute(select(MediaFile.kind, func.count()).group_by(MediaFile.kind)).all())
            total_bytes = session.scalar(select(func.coalesce(func.sum(MediaFile.size), 0)))
            vectors = session.scalar(select(func.count()).select_from(Embedding))
        return {"files_by_kind": by_kind, "files_bytes": int(total_bytes or 0), "vectors": int(vectors or 0)}

    # -- query cache ----------------------------------------------------------------------
    def cached_query_vectors(self, model_id: int, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached text vectors under the model, by text."""
        by_hash = {_text_hash(text): text for text in texts}
        out: dict[str, np.ndarray] = {}
        with self.engine.connect() as connection:
            for chunk in _chunks(list(by_hash), 500):
                rows = connection.execute(_CACHED_QUERIES, {"model_id": model_id, "hashes": chunk})
                out.update({by_hash[row.text_hash]: vector_from_bytes(row.vector) for row in rows})
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


def _file_values(record: FileRecord) -> dict[str, Any]:
    return {
        "path": record.path,
        "kind": record.kind,
        "size": record.size,
        "mtime_ns": record.mtime_ns,
        "content_hash": record.content_hash,
        "width": record.width,
        "height": record.height,
    }


def _set(session: Session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def _bump_generation(session: Session) -> int:
    row = session.get(Setting, GENERATION_KEY)
    generation = int(row.value) + 1 if row else 1
    _set(session, GENERATION_KEY, str(generation))
    return generation


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
