"""SQLAlchemy tables: the source of truth for what is indexed.

The schema is created and changed only by the Alembic migrations in
``migrations/``; ``alembic check`` must find nothing to add.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mmsearch.pathnames import from_stored, to_stored


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class StoredPath(TypeDecorator[str]):
    """A file path (or a text holding one): names that are not valid UTF-8 are stored through
    :func:`mmsearch.pathnames.to_stored` and read back in their surrogateescape form."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else to_stored(value)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else from_stored(value)


class ModelRecord(Base):
    """A model whose vectors are stored: name, pretrained tag, dim and preprocessing."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(1024))
    pretrained: Mapped[str | None] = mapped_column(String(1024))
    dim: Mapped[int] = mapped_column(Integer)
    preprocess_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MediaFile(Base):
    """One file on disk that was ingested. Its id is the id in the vector index."""

    __tablename__ = "media_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(StoredPath(4096), unique=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # When the photo was taken (EXIF), Unix seconds; None when unknown.
    taken_at: Mapped[float | None] = mapped_column(Float)
    # Signature of the companion files (caption or subtitle sidecars) seen with this file; None when it has none.
    sidecar_sig: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class TextItemRow(Base):
    """A caption or transcript segment of a media file, embedded in the shared space.

    Its id is its id in the caption or transcript vector index; its vector is the
    ``embeddings`` row with the same ``content_hash`` (identical texts share one).
    ``group_key`` names the set it was read with (``embedded``, ``sidecar``,
    ``transcript`` or ``manifest:<path>``), which is replaced as a whole on re-sync.
    """

    __tablename__ = "text_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("media_files.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    group_key: Mapped[str] = mapped_column(StoredPath(4200))
    source: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str | None] = mapped_column(StoredPath(4096))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    start_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)


class Embedding(Base):
    """A vector of some content under some model; shared by files with identical bytes."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("model_id", "content_hash", name="uq_embeddings_model_content"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueryCacheEntry(Base):
    """Text query vectors, so a repeated query needs no model load."""

    __tablename__ = "query_cache"
    __table_args__ = (UniqueConstraint("model_id", "text_hash", name="uq_query_cache_model_text"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    text_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Setting(Base):
    """Small key/value facts about this database (active model, index generation)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class FailedFileRow(Base):
    """A media file that failed to ingest, with the size, mtime and hash it had then: skipped until it changes."""

    __tablename__ = "failed_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(StoredPath(4096), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # None when the file could not even be read to hash it.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
