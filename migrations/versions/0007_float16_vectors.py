"""float16 vectors: the embeddings table keeps each vector as little-endian float16 (half the bytes)

Revision ID: 0007_float16_vectors
Revises: 0006_video
Create Date: 2026-12-06 07:00:00

Every stored vector is rewritten from float32 to float16 (each component rounded to the nearest float16; for a
unit vector the cosine with the float32 one stays above 0.9999, see ``mmsearch.store.records``), in batches
by id, on SQLite and PostgreSQL alike. The vectors changed, so in a library of up to ``REBUILD_LIMIT`` vectors
(where the indexes are flat by default) every collection's index generation is bumped: the vector indexes (FAISS
files, Milvus collections) are rebuilt from the database on next use, in seconds, and then hold the same float16
values (a flat file shrinks to half). A larger library keeps its indexes: an HNSW graph stores float32 vectors
anyway, the ones it holds agree with the stored float16 ones within the bound above (cosine >= 0.9999, score
change <= 2^-11), and rebuilding a graph of millions of vectors would take the upgrade minutes to hours;
``mmsearch reindex`` rebuilds them when wanted. Downgrading widens the vectors back to float32 (the rounding
stays).

The query cache keeps float32 (a cached query vector is exactly the one first encoded). SQLite does not give
the freed pages back by itself: ``VACUUM`` the file to shrink an upgraded database.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0007_float16_vectors"
down_revision: str | None = "0006_video"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
REBUILD_LIMIT = 50_000
"""Libraries of up to this many vectors get their indexes rebuilt (the default HNSW threshold: below it, flat)."""
GENERATION_KEY = "index_generation"  # and "index_generation:<collection>" for the other collections

embeddings = sa.table("embeddings", sa.column("id", sa.Integer()), sa.column("vector", sa.LargeBinary()))
settings = sa.table("settings", sa.column("key", sa.String()), sa.column("value", sa.Text()))


def _to_float16(blob: bytes) -> bytes:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.frombuffer(blob, dtype="<f4").astype("<f2").tobytes()


def _to_float32(blob: bytes) -> bytes:
    return np.frombuffer(blob, dtype="<f2").astype("<f4").tobytes()


def _rewrite_vectors(convert, width: int) -> None:
    """Every ``embeddings.vector`` through ``convert``, in batches by id (a blob that is not a whole number of
    ``width``-byte components is damaged, and left as it is)."""
    connection = op.get_bind()
    last = -1
    while True:
        rows = connection.execute(
            sa.select(embeddings.c.id, embeddings.c.vector)
            .where(embeddings.c.id > last)
            .order_by(embeddings.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        changed = [
            {"row_id": row_id, "new_vector": convert(bytes(vector))}
            for row_id, vector in rows
            if vector is not None and len(vector) % width == 0
        ]
        if changed:
            connection.execute(
                embeddings.update()
                .where(embeddings.c.id == sa.bindparam("row_id"))
                .values(vector=sa.bindparam("new_vector")),
                changed,
            )
        last = rows[-1][0]


def _bump_generations() -> None:
    """Every collection's index generation + 1: its vectors changed, so its index is rebuilt on next use."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(settings.c.key, settings.c.value).where(
            sa.or_(settings.c.key == GENERATION_KEY, settings.c.key.like(GENERATION_KEY + ":%"))
        )
    ).all()
    for key, value in rows:
        connection.execute(settings.update().where(settings.c.key == key).values(value=str(int(value) + 1)))


def _vector_count() -> int:
    return int(op.get_bind().execute(sa.select(sa.func.count()).select_from(embeddings)).scalar_one())


def upgrade() -> None:
    _rewrite_vectors(_to_float16, 4)
    if _vector_count() <= REBUILD_LIMIT:
        _bump_generations()


def downgrade() -> None:
    _rewrite_vectors(_to_float32, 2)
    _bump_generations()
