"""Text items written in batches (``mmsearch.store.text_items``): one executemany for the rows of a batch (an
ordered ``INSERT ... RETURNING`` ran one statement per row on SQLite), the ids of exactly the inserted rows
handed back for the indexes, nothing read for files inserted in the same batch, and the stored rows those of
before. :func:`check_text_item_writes` also runs on PostgreSQL (``tests/integration/test_postgres.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from mmsearch.encoders.base import ModelIdentity
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.models import TextItemRow
from mmsearch.store.records import FileRecord
from mmsearch.store.repository import MetadataStore
from mmsearch.store.text_items import TextRecord

IDENTITY = ModelIdentity("fake", "4", 4, {"thumbnail": 8})


def caption(text: str, ordinal: int = 0, group: str = "sidecar", kind: str = "caption") -> TextRecord:
    return TextRecord(kind, group, "test", None, ordinal, text, None, None, f"hash-{text}")


def stored_rows(store: MetadataStore, file_ids: list[int]) -> dict[int, tuple]:
    """Every text item of ``file_ids``: id -> (file id, group, kind, ordinal, text, content hash)."""
    columns = (TextItemRow.file_id, TextItemRow.group_key, TextItemRow.kind, TextItemRow.ordinal, TextItemRow.text)
    with store.session() as session:
        rows = session.execute(
            select(TextItemRow.id, *columns, TextItemRow.content_hash).where(TextItemRow.file_id.in_(file_ids))
        )
        return {row[0]: tuple(row[1:]) for row in rows}


class Statements:
    """The INSERTs into and SELECTs from text_items a block runs."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.inserts: list[bool] = []  # executemany flag of each
        self.selects: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.store.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self.store.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        text = " ".join(statement.split()).upper()
        if text.startswith("INSERT INTO TEXT_ITEMS"):
            self.inserts.append(executemany)
        elif text.startswith("SELECT") and "FROM TEXT_ITEMS" in text:
            self.selects.append(text)


def check_text_item_writes(store: MetadataStore, root: str) -> None:
    """New files with captions, then a batch that replaces one group, keeps another and adds a new file."""
    model_id = store.adopt_model(IDENTITY)
    files = [FileRecord(f"{root}/{i}.jpg", "image", i, i, f"{root}-h{i}", 3, 2) for i in range(3)]
    texts = {
        files[0].path: {
            "sidecar": [caption("a dog"), caption("on a beach", 1)],
            "embedded": [caption("dog", group="embedded")],
        },
        files[1].path: {"sidecar": [], "embedded": []},  # a photo without captions
        files[2].path: {"speech": [caption("hello", group="speech", kind="transcript")]},
    }
    with Statements(store) as seen:
        first = store.write_assets(model_id, files, {}, texts)
    ids = first.file_ids
    rows = stored_rows(store, ids)
    assert seen.inserts == [True] or (seen.inserts == [False] and len(rows) == 1)  # one statement, many rows
    assert not any("ORDER BY TEXT_ITEMS.FILE_ID" in select_ for select_ in seen.selects)  # new files: none read
    assert sorted((f, g, k, o, t) for f, g, k, o, t, _ in rows.values()) == [
        (ids[0], "embedded", "caption", 0, "dog"),
        (ids[0], "sidecar", "caption", 0, "a dog"),
        (ids[0], "sidecar", "caption", 1, "on a beach"),
        (ids[2], "speech", "transcript", 0, "hello"),
    ]
    assert first.removed_texts == {}
    assert {kind: sorted(pairs) for kind, pairs in first.added_texts.items()} == {
        kind: sorted((item_id, row[5]) for item_id, row in rows.items() if row[2] == kind)
        for kind in ("caption", "transcript")
    }

    new_file = FileRecord(f"{root}/new.jpg", "image", 9, 9, f"{root}-new", 3, 2)
    second_texts = {
        # one group replaced, one kept
        files[0].path: {"sidecar": [caption("a cat")], "embedded": [caption("dog", group="embedded")]},
        new_file.path: {"sidecar": [caption("a new photo")]},
    }
    second = store.write_assets(model_id, [new_file], {}, second_texts)
    new_id = second.file_ids[0]
    after = stored_rows(store, [*ids, new_id])
    kept = [item_id for item_id, row in rows.items() if row[1] == "embedded"]
    replaced = sorted(item_id for item_id, row in rows.items() if row[0] == ids[0] and row[1] == "sidecar")
    assert all(item_id in after for item_id in kept) and not any(item_id in after for item_id in replaced)
    assert second.removed_texts == {"caption": replaced}
    added = {item_id for item_id, row in after.items() if item_id not in rows}
    assert sorted(second.added_texts["caption"]) == sorted((item_id, after[item_id][5]) for item_id in added)
    assert sorted((after[i][0], after[i][1], after[i][4]) for i in added) == [
        (ids[0], "sidecar", "a cat"),
        (new_id, "sidecar", "a new photo"),
    ]


@pytest.fixture
def store() -> MetadataStore:
    engine = connect("sqlite://")
    upgrade_to_head(engine)
    return MetadataStore(engine)


def test_text_items_are_inserted_in_one_statement_with_the_same_rows_on_sqlite(store: MetadataStore) -> None:
    check_text_item_writes(store, "/photos")
