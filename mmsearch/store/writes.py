"""Writes of the metadata database: adopting the model, files with their vectors and texts, removals, garbage
collection, settings, the query vector cache. One transaction per call."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mmsearch.errors import ModelMismatchError
from mmsearch.identity import ModelIdentity
from mmsearch.kinds import COLLECTIONS, FRAME, IMAGE
from mmsearch.store.lookups import (
    ACTIVE_MODEL_KEY,
    StoreReads,
    chunked,
    generation_key,
    text_hash,
)
from mmsearch.store.models import Embedding, MediaFile, ModelRecord, QueryCacheEntry, Setting, TextItemRow, utcnow
from mmsearch.store.records import AssetWrite, FileRecord, embedding_to_bytes, vector_to_bytes
from mmsearch.store.sql_reads import QUERY_CACHE_LIMIT
from mmsearch.store.text_items import TextRecord, replace_text_groups


class StoreWrites(StoreReads):
    """The writing side of :class:`~mmsearch.store.repository.MetadataStore`."""

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
            ids_by_path, new_ids = _upsert_files(session, records, now)
            result = AssetWrite([ids_by_path[record.path] for record in records], {})
            others = [path for path in (texts or {}) if path not in ids_by_path]
            for chunk in chunked(others, 500):
                rows = session.execute(select(MediaFile.path, MediaFile.id).where(MediaFile.path.in_(chunk)))
                ids_by_path.update((path, file_id) for path, file_id in rows)
            texts = {path: groups for path, groups in (texts or {}).items() if path in ids_by_path}
            if texts:
                by_file = {ids_by_path[path]: groups for path, groups in texts.items()}
                result.added_texts, result.removed_texts = replace_text_groups(session, by_file, new_ids)
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
            for chunk in chunked(list(ids), 500):
                for item_id, kind in session.execute(
                    select(TextItemRow.id, TextItemRow.kind).where(TextItemRow.file_id.in_(chunk))
                ):
                    result.removed_texts.setdefault(kind, []).append(item_id)
                session.execute(delete(TextItemRow).where(TextItemRow.file_id.in_(chunk)))
                session.execute(delete(MediaFile).where(MediaFile.id.in_(chunk)))
            # Keyframes (``frame``) change only when a video's items went with it.
            result.generations = _bump_generations(
                session, {c for c in COLLECTIONS if c != FRAME} | set(result.removed_texts)
            )
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
            return int(cast("CursorResult[Any]", result).rowcount or 0)

    def set_setting(self, key: str, value: str) -> None:
        """Store a small fact."""
        with self.session() as session, session.begin():
            _set(session, key, value)

    def cache_query_vectors(self, model_id: int, vectors: dict[str, np.ndarray]) -> None:
        """Remember text vectors (first writer wins); past :data:`QUERY_CACHE_LIMIT` the oldest are dropped."""
        if not vectors:
            return
        rows = [
            {
                "model_id": model_id,
                "text_hash": text_hash(text),
                "vector": vector_to_bytes(vector),
                "created_at": utcnow(),
            }
            for text, vector in vectors.items()
        ]
        table: Any = QueryCacheEntry.__table__
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
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing()
    from sqlalchemy import insert  # other databases: a duplicate raises IntegrityError, which the caller ignores

    return insert(table)


def _insert_missing_vectors(session: Session, model_id: int, vectors: dict[str, np.ndarray], now: datetime) -> None:
    if not vectors:
        return
    existing: set[str] = set()
    for chunk in chunked(list(vectors), 500):
        existing.update(
            session.scalars(
                select(Embedding.content_hash).where(Embedding.model_id == model_id, Embedding.content_hash.in_(chunk))
            )
        )
    rows = [
        {"model_id": model_id, "content_hash": content_hash, "vector": embedding_to_bytes(vector), "created_at": now}
        for content_hash, vector in vectors.items()
        if content_hash not in existing
    ]
    if rows:
        session.execute(insert(Embedding), rows)


def _upsert_files(session: Session, records: Sequence[FileRecord], now: datetime) -> tuple[dict[str, int], set[int]]:
    """Insert or update the files; their ids by path, and the ids of those inserted."""
    ids_by_path: dict[str, int] = {}
    new_ids: set[int] = set()
    for chunk in chunked([record.path for record in records], 500):
        rows = session.execute(select(MediaFile.path, MediaFile.id).where(MediaFile.path.in_(chunk)))
        ids_by_path.update((path, file_id) for path, file_id in rows)
    changed = [
        {"id": ids_by_path[r.path], **_file_values(r), "updated_at": now} for r in records if r.path in ids_by_path
    ]
    if changed:
        session.execute(update(MediaFile), changed)
    added = [{**_file_values(r), "created_at": now, "updated_at": now} for r in records if r.path not in ids_by_path]
    if added:
        # one executemany, then the new ids by path (unique): an INSERT ... RETURNING in parameter order runs one
        # statement per row on SQLite (30 a batch, the largest part of the commit thread's statements)
        session.execute(insert(MediaFile), added)
        for chunk in chunked([row["path"] for row in added], 500):
            fresh = session.execute(select(MediaFile.path, MediaFile.id).where(MediaFile.path.in_(chunk))).all()
            ids_by_path.update((path, file_id) for path, file_id in fresh)
            new_ids.update(file_id for _, file_id in fresh)
    return ids_by_path, new_ids


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


def _bump_generations(session: Session, collections: Iterable[str]) -> dict[str, int]:
    bumped = {}
    for collection in sorted(set(collections)):
        row = session.get(Setting, generation_key(collection))
        bumped[collection] = int(row.value) + 1 if row else 1
        _set(session, generation_key(collection), str(bumped[collection]))
    return bumped
