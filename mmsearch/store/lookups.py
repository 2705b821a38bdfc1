"""Reads of the metadata database through SQLAlchemy: what ingest, checks and status read (files under a folder,
vectors by hash, counts, every vector of a collection), on top of the query side's statements
(:class:`~mmsearch.store.sql_reads.SqlReads`, shared with the stdlib store). One short transaction per call."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from mmsearch.kinds import IMAGE
from mmsearch.store.models import Embedding, MediaFile, TextItemRow
from mmsearch.store.reads import DriverReads
from mmsearch.store.records import KnownFile, StoredText, embedding_from_bytes
from mmsearch.store.sql_reads import (  # noqa: F401 - re-exported: their home is sql_reads
    ACTIVE_MODEL_KEY,
    GENERATION_KEY,
    SqlReads,
    chunked,
    generation_key,
    text_hash,
)

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


class StoreReads(SqlReads):
    """The reading side of :class:`~mmsearch.store.repository.MetadataStore` (and its connections)."""

    def __init__(self, engine: SqlEngine) -> None:
        super().__init__(DriverReads(engine))
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    # -- the store as a QueryStore --------------------------------------------------------
    @property
    def database_name(self) -> str:
        """The URL with the password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def one_connection(self) -> bool:
        """True for an in-memory SQLite database (every thread shares its one connection)."""
        return isinstance(self.engine.pool, StaticPool)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

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
