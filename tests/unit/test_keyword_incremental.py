"""The Tantivy keyword index kept in step incrementally: an ingest re-reads only the documents it changed, and any
sequence of adds, updates and deletions searches like a rebuild from the database."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch import Engine
from mmsearch.kinds import COLLECTIONS
from mmsearch.store import keyword_tantivy
from mmsearch.store.database import connect, upgrade_to_head
from mmsearch.store.keyword_tantivy import (
    STAMP_FILE,
    KeywordChanges,
    TantivyKeywords,
    keyword_index_path,
)
from mmsearch.store.records import FileRecord
from mmsearch.store.repository import MetadataStore
from mmsearch.store.text_items import TextRecord
from tests.conftest import make_image

WORDS = ("dog", "cat", "beach", "snow", "boat", "red", "run", "sofa")
QUERIES = ("dog", "cat beach", "snow boat red", "running dogs", "sofa", "f3", "f1 cat")


def _texts(words: list[str]) -> list[TextRecord]:
    return [
        TextRecord("caption", "sidecar", "sidecar", None, ordinal, text, None, None, f"h{hash(text)}")
        for ordinal, text in enumerate(dict.fromkeys(words))
    ]


class Library:
    """A database written through the store (as an ingest writes it), with the changes it made recorded."""

    def __init__(self, folder: Path) -> None:
        engine = connect(f"sqlite:///{folder}/db.sqlite")
        upgrade_to_head(engine)
        self.store = MetadataStore(engine)
        self.changes = KeywordChanges()
        self.ids: dict[int, int] = {}

    def generations(self) -> dict[str, int]:
        return self.store.generations(COLLECTIONS)

    def put(self, number: int, captions: list[str]) -> None:
        path = f"/lib/f{number}_{WORDS[number % len(WORDS)]}.jpg"
        record = FileRecord(path, "image", 1, len(captions), f"c{number}")
        written = self.store.write_assets(1, [record], {}, {path: {"sidecar": _texts(captions)}})
        self.ids[number] = written.file_ids[0]
        self.changes.record(written)

    def delete(self, number: int) -> None:
        if number in self.ids:
            self.changes.record(self.store.delete_files([self.ids.pop(number)]))


def _results(keywords: TantivyKeywords, generations: dict[str, int]) -> dict[str, list[tuple]]:
    keywords.ensure(generations)
    return {
        query: [(m.file_id, m.item_id, m.kind, round(m.score, 4)) for m in keywords.search(query, 1000)]
        for query in QUERIES
    }


def _unscored(results: dict[str, list[tuple]]) -> dict[str, set[tuple]]:
    return {query: {match[:3] for match in matches} for query, matches in results.items()}


_CAPTION = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
_STEP = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 7), st.lists(_CAPTION, max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 7), st.just([])),
    st.tuples(st.just("sync"), st.just(0), st.just([])),
)


@given(st.lists(_STEP, min_size=1, max_size=12))
@settings(max_examples=30, deadline=None)
def test_any_sequence_of_changes_searches_like_a_rebuild(steps: list[tuple[str, int, list[str]]]) -> None:
    """After every ``sync`` (an ingest's end) the incrementally kept index finds exactly the documents a rebuild
    finds; while it holds no deleted documents, with the same scores in the same order too. (Every update is
    incremental here: the share of deleted documents that makes it rebuild is lifted.)"""
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(keyword_tantivy, "MAX_DEAD_SHARE", 1e9):
        library = Library(Path(tmp))
        keywords = TantivyKeywords(library.store, Path(tmp) / "kw.tantivy")
        keywords.rebuild(library.generations())
        before = library.generations()
        for step, (action, number, captions) in enumerate([*steps, ("sync", 0, [])]):
            if action == "put":
                library.put(number, captions)
            elif action == "delete":
                library.delete(number)
            else:
                after = library.generations()
                outcome = keywords.update(before, after, library.changes)
                expected = "current" if after == before else "updated"
                library.changes, before = KeywordChanges(), after
                incremental = _results(keywords, after)
                fresh = TantivyKeywords(library.store, Path(tmp) / f"fresh-{step}.tantivy")
                documents = fresh.rebuild(after)
                # incremental whenever something changed, except to empty (all deleted: a rebuild costs nothing)
                assert outcome == (expected if documents else outcome)
                rebuilt = _results(fresh, after)
                assert _unscored(incremental) == _unscored(rebuilt)
                stamp = json.loads((keywords.path / STAMP_FILE).read_text())
                assert stamp["documents"] == documents and stamp["generations"] == after
                if stamp["written"] == stamp["documents"]:  # no deleted documents in its statistics
                    assert incremental == rebuilt


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return Library(tmp_path)


def test_an_update_reads_only_the_changes_and_keeps_the_stamp_in_step(library: Library, tmp_path: Path) -> None:
    for number in range(20):
        library.put(number, ["a dog on a beach"])
    keywords = TantivyKeywords(library.store, tmp_path / "kw.tantivy")
    before = library.generations()
    assert keywords.update({}, before, library.changes) == "rebuilt"  # no index yet
    library.changes = KeywordChanges()
    library.put(6, ["a red boat"])
    library.put(2, ["a cat on a sofa"])  # an update: its old caption goes
    library.delete(3)
    after = library.generations()
    assert keywords.update(before, after, library.changes) == "updated"
    stamp = json.loads((keywords.path / STAMP_FILE).read_text())
    assert stamp["generations"] == after and stamp["documents"] == 2 * 19  # 19 files: a caption and a name each
    assert stamp["kinds"] == {"caption": 19, "transcript": 0, "name": 19} and stamp["written"] == 40 + 4
    keywords.ensure(after)
    dogs = {library.ids[n] for n in range(20) if n not in (2, 3, 6)}
    assert {m.file_id for m in keywords.search("dog", 50, ("caption",))} == dogs
    assert [m.file_id for m in keywords.search("sofa boat", 50, ("caption",))] != []
    assert keywords.update(after, after, KeywordChanges()) == "current"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".kw.tantivy")]
    assert leftovers == []


def test_a_stale_or_foreign_index_is_rebuilt_whole(library: Library, tmp_path: Path) -> None:
    library.put(0, ["a dog"])
    keywords = TantivyKeywords(library.store, tmp_path / "kw.tantivy")
    keywords.rebuild(library.generations())
    stale = library.generations()
    library.put(1, ["a cat"])  # written without the index being told: it is behind
    library.changes = KeywordChanges()
    before = library.generations()
    library.put(2, ["a boat"])
    assert keywords.update(before, library.generations(), library.changes) == "rebuilt"
    keywords.ensure(library.generations())
    assert len(keywords.search("cat", 5, ("caption",))) == 1  # the change it was not told of is there too
    assert stale != before
    stamp_path = keywords.path / STAMP_FILE
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "database": "another"}))  # the stamp of another database
    library.changes = KeywordChanges()
    before = library.generations()
    library.put(3, ["a fox"])
    assert keywords.update(before, library.generations(), library.changes) == "rebuilt"


def test_too_many_deleted_documents_mean_a_rebuild(library: Library, tmp_path: Path) -> None:
    for number in range(5):
        library.put(number, ["a dog"])
    keywords = TantivyKeywords(library.store, tmp_path / "kw.tantivy")
    keywords.rebuild(library.generations())
    library.changes, before = KeywordChanges(), library.generations()
    library.put(0, ["a dog in the snow"])  # 2 of 10 documents replaced: 20 %, not past the limit
    assert keywords.update(before, library.generations(), library.changes) == "updated"
    library.changes, before = KeywordChanges(), library.generations()
    library.delete(1)  # 4 deleted of 8 live
    assert keywords.update(before, library.generations(), library.changes) == "rebuilt"
    assert json.loads((keywords.path / STAMP_FILE).read_text())["written"] == 8


def test_an_ingest_updates_the_index_without_a_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "library"
    captions = ["a dog on the beach", "a cat on a sofa", "a red boat", "snow", *(f"tree number {n}" for n in range(8))]
    for seed, caption in enumerate(captions):
        make_image(folder / f"p{seed}.jpg", seed)
        (folder / f"p{seed}.txt").write_text(caption, encoding="utf-8")
    with Engine.open(tmp_path / "home", model="fake:16", db_url=f"sqlite:///{tmp_path}/db.sqlite") as engine:
        engine.ingest(folder)

        def no_rebuild(self: TantivyKeywords, generations: dict[str, int]) -> int:
            raise AssertionError("rebuilt whole")

        monkeypatch.setattr(TantivyKeywords, "rebuild", no_rebuild)
        (folder / "p1.txt").write_text("a cat on a green sofa", encoding="utf-8")
        (folder / "p2.jpg").unlink()
        make_image(folder / "fox.jpg", 9)
        (folder / "fox.txt").write_text("a fox in the green garden", encoding="utf-8")
        engine.ingest(folder)
        hits = engine.search("green", kind="caption", mode="keyword")
        assert sorted(h.text for h in hits) == ["a cat on a green sofa", "a fox in the green garden"]
        assert engine.search("boat", kind="caption", mode="keyword") == []
        path = keyword_index_path(engine.settings.index_dir, engine.settings.database_url)
        assert json.loads((path / STAMP_FILE).read_text())["generations"] == engine.store.generations(COLLECTIONS)


def test_a_folder_replaced_during_the_copy_means_a_rebuild(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process swapped its own build in while the update linked the files: the copy is dropped and the
    index rebuilt, never a mix of two folders stamped as current."""
    for number in range(10):
        library.put(number, ["a dog"])
    keywords = TantivyKeywords(library.store, tmp_path / "kw.tantivy")
    keywords.rebuild(library.generations())
    library.changes, before = KeywordChanges(), library.generations()
    library.put(10, ["a cat"])

    def replaced(source: Path, target: Path) -> dict:
        stamp = json.loads((source / STAMP_FILE).read_text())
        (target / STAMP_FILE).write_text(json.dumps({**stamp, "generations": {"image": 99}}))
        return stamp  # what the update read first, not what it copied

    monkeypatch.setattr(keyword_tantivy, "link_copy", replaced)
    assert keywords.update(before, library.generations(), library.changes) == "rebuilt"
    keywords.ensure(library.generations())
    assert len(keywords.search("cat", 5, ("caption",))) == 1


def test_an_ingest_that_changed_too_much_rebuilds_and_keeps_no_ids(library: Library, tmp_path: Path) -> None:
    keywords = TantivyKeywords(library.store, tmp_path / "kw.tantivy")
    keywords.rebuild(library.generations())
    library.changes, before = KeywordChanges(), library.generations()
    with mock.patch.object(keyword_tantivy, "MAX_CHANGES", 3):
        for number in range(3):
            library.put(number, ["a dog"])  # a caption and a name each: past 3 ids after the second file
    assert library.changes.overflow and len(library.changes) == 0 and library.changes
    assert keywords.update(before, library.generations(), library.changes) == "rebuilt"
    keywords.ensure(library.generations())
    assert len(keywords.search("dog", 5, ("caption",))) == 3
