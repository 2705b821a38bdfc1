"""Remembered failures: a media file that failed to ingest is skipped on later runs until it changes.

A failure is stored with the file's size, mtime and content hash (when it could be read) and the reason. A later
run skips the file while its size and mtime are the same, or while its bytes hash the same (only touched).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from mmsearch.store.models import FailedFileRow, utcnow
from mmsearch.store.repository import MetadataStore


@dataclass(frozen=True)
class RememberedFailure:
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    reason: str
    failed_at: datetime | None = None

    def same_stat(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_at"] = self.failed_at.isoformat() if self.failed_at else None
        return data


def _failure(row: FailedFileRow) -> RememberedFailure:
    return RememberedFailure(row.path, row.size, row.mtime_ns, row.content_hash, row.reason, row.failed_at)


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class FailureMemory:
    """Reads and writes of the ``failed_files`` table."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def under(self, root: str) -> dict[str, RememberedFailure]:
        """Remembered failures of files under the folder ``root``, by path."""
        prefix = root.rstrip("/") + "/"
        query = select(FailedFileRow).where(FailedFileRow.path.startswith(prefix, autoescape=True))
        with self.store.session() as session:
            return {row.path: _failure(row) for row in session.scalars(query)}

    def remember(self, failures: Sequence[RememberedFailure]) -> None:
        """Record failures (replacing what was remembered of the same paths)."""
        if not failures:
            return
        now = utcnow()
        with self.store.session() as session, session.begin():
            paths = [failure.path for failure in failures]
            for chunk in _chunks(paths):
                session.execute(delete(FailedFileRow).where(FailedFileRow.path.in_(chunk)))
            for failure in failures:
                values = {**asdict(failure), "failed_at": failure.failed_at or now}
                session.add(FailedFileRow(**values))

    def forget(self, paths: Iterable[str]) -> None:
        """Drop what is remembered of these paths (they were ingested, or are gone)."""
        paths = list(paths)
        if not paths:
            return
        with self.store.session() as session, session.begin():
            for chunk in _chunks(paths):
                session.execute(delete(FailedFileRow).where(FailedFileRow.path.in_(chunk)))

    def count(self) -> int:
        with self.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(FailedFileRow)) or 0)

    def all(self, limit: int | None = None) -> list[RememberedFailure]:
        """Every remembered failure, by path (the first ``limit``)."""
        query = select(FailedFileRow).order_by(FailedFileRow.path).limit(limit)
        with self.store.session() as session:
            return [_failure(row) for row in session.scalars(query)]
