"""Database-side facts for integrity checks: the ids each vector index must hold, and what lacks a vector.

The vector indexes mirror these queries (see ``mmsearch.check`` for the comparison with the index files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import func, select, text, update

from mmsearch.kinds import IMAGE
from mmsearch.store.models import Embedding, MediaFile, TextItemRow
from mmsearch.store.repository import MetadataStore

if TYPE_CHECKING:
    from sqlalchemy import CursorResult


def _ids_query(model_id: int, collection: str):
    if collection == IMAGE:
        return (
            select(MediaFile.id)
            .join(Embedding, Embedding.content_hash == MediaFile.content_hash)
            .where(Embedding.model_id == model_id, MediaFile.kind == IMAGE)
        )
    return (
        select(TextItemRow.id)
        .join(Embedding, Embedding.content_hash == TextItemRow.content_hash)
        .where(Embedding.model_id == model_id, TextItemRow.kind == collection)
    )


def collection_ids(store: MetadataStore, model_id: int, collection: str) -> np.ndarray:
    """The ids (file ids for images, text item ids otherwise) the collection's index must hold, sorted."""
    with store.session() as session:
        ids = session.scalars(_ids_query(model_id, collection)).all()
    return np.sort(np.fromiter(ids, dtype=np.int64, count=len(ids)))


def collection_size(store: MetadataStore, model_id: int, collection: str) -> int:
    """How many vectors the collection's index must hold (one ``COUNT``)."""
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(_ids_query(model_id, collection).subquery())) or 0)


def images_without_vector(store: MetadataStore, model_id: int) -> list[str]:
    """Paths of image files whose content has no stored vector under the model (lost vectors)."""
    has_vector = select(Embedding.content_hash).where(Embedding.model_id == model_id)
    query = select(MediaFile.path).where(MediaFile.kind == IMAGE, MediaFile.content_hash.not_in(has_vector))
    with store.session() as session:
        return sorted(session.scalars(query).all())


def duplicate_paths(store: MetadataStore) -> list[str]:
    """Paths stored more than once (the schema forbids it; checked all the same)."""
    query = select(MediaFile.path).group_by(MediaFile.path).having(func.count() > 1)
    with store.session() as session:
        return sorted(session.scalars(query).all())


# -- the keyword index (SQLite FTS5; PostgreSQL derives its own from the rows, so it cannot drift) ------------------
_BASENAME = "replace(path, rtrim(path, replace(path, '/', '')), '')"  # as migration 0003 indexes file names
_KEYWORD_MISSING = (
    "SELECT (SELECT count(*) FROM text_items t WHERE NOT EXISTS (SELECT 1 FROM search_fts f WHERE f.rowid = t.id))"
    " + (SELECT count(*) FROM media_files m WHERE NOT EXISTS (SELECT 1 FROM search_fts f WHERE f.rowid = -m.id))"
)
_KEYWORD_EXTRA = (
    "SELECT count(*) FROM search_fts f WHERE (f.rowid > 0 AND NOT EXISTS (SELECT 1 FROM text_items t "
    "WHERE t.id = f.rowid)) OR (f.rowid < 0 AND NOT EXISTS (SELECT 1 FROM media_files m WHERE m.id = -f.rowid))"
)


def keyword_drift(store: MetadataStore) -> tuple[int, int] | None:
    """``(missing, extra)`` entries of the keyword index against the captions, transcripts and file names it
    must hold; None where the database keeps it itself (PostgreSQL)."""
    if store.engine.dialect.name != "sqlite":
        return None
    with store.engine.connect() as connection:
        missing = int(connection.execute(text(_KEYWORD_MISSING)).scalar() or 0)
        extra = int(connection.execute(text(_KEYWORD_EXTRA)).scalar() or 0)
    return missing, extra


def rebuild_keyword_index(store: MetadataStore) -> None:
    """Refill the SQLite keyword index from the rows (one transaction)."""
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM search_fts"))
        connection.execute(
            text("INSERT INTO search_fts(rowid, body, file_id) SELECT id, text, file_id FROM text_items")
        )
        connection.execute(
            text(f"INSERT INTO search_fts(rowid, body, file_id) SELECT -id, {_BASENAME}, id FROM media_files")
        )


def mark_for_embedding(store: MetadataStore, paths: list[str]) -> int:
    """Make the next ingest treat these files as changed (their stored modification time is cleared), so that it
    hashes them and embeds what has no vector; returns how many were marked."""
    marked = 0
    with store.session() as session, session.begin():
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            result = session.execute(update(MediaFile).where(MediaFile.path.in_(chunk)).values(mtime_ns=-1))
            marked += int(cast("CursorResult[Any]", result).rowcount or 0)
    return marked
