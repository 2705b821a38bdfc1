"""Reads for videos: the stored items of a content hash (a renamed or copied video reuses them), and a file's
row and items by path (the storyboard)."""

from __future__ import annotations

from sqlalchemy import select

from mmsearch.store.models import MediaFile, TextItemRow
from mmsearch.store.records import StoredFile, StoredText
from mmsearch.store.repository import MetadataStore
from mmsearch.store.text_items import TextRecord

_RECORD_COLUMNS = (
    TextItemRow.kind,
    TextItemRow.group_key,
    TextItemRow.source,
    TextItemRow.origin,
    TextItemRow.ordinal,
    TextItemRow.text,
    TextItemRow.start_s,
    TextItemRow.end_s,
    TextItemRow.content_hash,
    TextItemRow.at_s,
)


def items_of_content(store: MetadataStore, content_hash: str, kind: str) -> dict[str, list[TextRecord]] | None:
    """The item groups of one stored file of ``kind`` with these bytes, or None when there is none."""
    with store.session() as session:
        file_id = session.scalar(
            select(MediaFile.id)
            .where(MediaFile.content_hash == content_hash, MediaFile.kind == kind)
            .order_by(MediaFile.id)
            .limit(1)
        )
        if file_id is None:
            return None
        rows = session.execute(
            select(*_RECORD_COLUMNS)
            .where(TextItemRow.file_id == file_id)
            .order_by(TextItemRow.group_key, TextItemRow.ordinal, TextItemRow.id)
        )
        groups: dict[str, list[TextRecord]] = {}
        for row in rows:
            record = TextRecord(*tuple(row))
            groups.setdefault(record.group_key, []).append(record)
        return groups


def file_by_path(store: MetadataStore, path: str) -> StoredFile | None:
    """The stored file at ``path``, if any."""
    with store.session() as session:
        file_id = session.scalar(select(MediaFile.id).where(MediaFile.path == path))
    return store.get_files([file_id]).get(file_id) if file_id is not None else None


def items_of_file(store: MetadataStore, file_id: int) -> list[StoredText]:
    """Every item of a file (keyframes, transcript segments, captions) in kind and id order."""
    return store.texts_of_files([file_id]).get(file_id, [])
