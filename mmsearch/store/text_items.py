"""Writing the text items of files: groups of captions or transcript segments, replaced as a whole."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from mmsearch.store.models import TextItemRow


@dataclass(frozen=True)
class TextRecord:
    """One text item to store: a chunk of a caption or a transcript segment that fits the text encoder."""

    kind: str
    group_key: str
    source: str
    origin: str | None
    ordinal: int
    text: str
    start: float | None
    end: float | None
    content_hash: str
    at: float | None = None
    """A keyframe's time (seconds); ``start``/``end`` are then its shot's span."""


_COLUMNS = (
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


def replace_text_groups(
    session: Session,
    groups_by_file: Mapping[int, Mapping[str, Sequence[TextRecord]]],
    new_files: Collection[int] = (),
) -> tuple[dict[str, list[tuple[int, str]]], dict[str, list[int]]]:
    """Make each (file, group) hold exactly the given records; unchanged groups are not touched.

    ``new_files``: ids of files inserted in this transaction (they hold no items yet: nothing is read for them).
    Returns ``(added, removed)``: per text kind, the (id, content hash) of inserted items (in id order) and the
    ids of deleted ones, so the vector indexes can mirror the change.
    """
    stored = _stored_groups(session, [file_id for file_id in groups_by_file if file_id not in new_files])
    removed: dict[str, list[int]] = {}
    rows: list[dict[str, Any]] = []
    for file_id, groups in groups_by_file.items():
        for group_key, records in groups.items():
            current = stored.get((file_id, group_key), [])
            if [record for _, record in current] == list(records):
                continue
            for item_id, record in current:
                removed.setdefault(record.kind, []).append(item_id)
            rows.extend(_row(file_id, record) for record in records)
    doomed = [item_id for ids in removed.values() for item_id in ids]
    for chunk in _chunks(doomed, 500):
        session.execute(delete(TextItemRow).where(TextItemRow.id.in_(chunk)))
    return (_insert(session, rows) if rows else {}), removed


def _insert(session: Session, rows: list[dict[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    """Insert ``rows`` with one executemany, then read their ids back by (file, group): each group written here
    holds only these rows now (its former rows were deleted in this transaction, under the writer lock). An
    ordered ``INSERT ... RETURNING`` would run one statement per row on SQLite."""
    # Core executemany: no ORM bulk-insert bookkeeping
    session.execute(insert(cast(Table, TextItemRow.__table__)), rows)
    groups = {(row["file_id"], row["group_key"]) for row in rows}
    added: dict[str, list[tuple[int, str]]] = {}
    for chunk in _chunks(sorted({file_id for file_id, _ in groups}), 500):
        query = (
            select(TextItemRow.id, TextItemRow.file_id, TextItemRow.group_key, TextItemRow.kind)
            .add_columns(TextItemRow.content_hash)
            .where(TextItemRow.file_id.in_(chunk))
            .order_by(TextItemRow.id)
        )
        for item_id, file_id, group_key, kind, content_hash in session.execute(query):
            if (file_id, group_key) in groups:
                added.setdefault(kind, []).append((item_id, content_hash))
    return added


def _stored_groups(session: Session, file_ids: list[int]) -> dict[tuple[int, str], list[tuple[int, TextRecord]]]:
    out: dict[tuple[int, str], list[tuple[int, TextRecord]]] = {}
    for chunk in _chunks(file_ids, 500):
        query = (
            select(TextItemRow.id, TextItemRow.file_id, *_COLUMNS)
            .where(TextItemRow.file_id.in_(chunk))
            .order_by(TextItemRow.file_id, TextItemRow.group_key, TextItemRow.ordinal, TextItemRow.id)
        )
        for item_id, file_id, *values in session.execute(query):
            record = TextRecord(*values)
            out.setdefault((file_id, record.group_key), []).append((item_id, record))
    return out


def _row(file_id: int, record: TextRecord) -> dict[str, Any]:
    # the fields by hand: dataclasses.astuple deep-copies each value (~50 us a row, most of a batch's inserts)
    return {
        "file_id": file_id,
        "kind": record.kind,
        "group_key": record.group_key,
        "source": record.source,
        "origin": record.origin,
        "ordinal": record.ordinal,
        "text": record.text,
        "start_s": record.start,
        "end_s": record.end,
        "content_hash": record.content_hash,
        "at_s": record.at,
    }


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
