"""Database-side facts for integrity checks: the ids each vector index must hold, and what lacks a vector.

The vector indexes mirror these queries (see ``mmsearch.check`` for the comparison with the index files).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from mmsearch.kinds import IMAGE
from mmsearch.store.models import Embedding, MediaFile, TextItemRow
from mmsearch.store.repository import MetadataStore


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
