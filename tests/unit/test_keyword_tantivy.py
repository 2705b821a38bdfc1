"""The Tantivy keyword index: the same matches as the database's full text, a cache kept in step by generation
stamps and swapped in whole, on the engine's search path by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmsearch import Engine
from mmsearch.kinds import COLLECTIONS
from mmsearch.store.keyword import keyword_search
from mmsearch.store.keyword_tantivy import FORMAT, STAMP_FILE, TantivyKeywords, keyword_index_path, tantivy_chosen
from tests.conftest import make_image

CAPTIONS = {
    "dog": "a brown dog running on the beach",
    "cat": "a grey cat asleep on a sofa, the café's cat",
    "boat": "a red boat in the harbour at sunset",
    "snow": "children playing in the snow",
}


@pytest.fixture
def engine(tmp_path: Path):
    folder = tmp_path / "library"
    for seed, (stem, caption) in enumerate(CAPTIONS.items(), 1):
        make_image(folder / f"{stem}.jpg", seed)
        (folder / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
    make_image(folder / "lighthouse_at_night.png", 11)
    with Engine.open(tmp_path / "home", model="fake:16", db_url=f"sqlite:///{tmp_path}/db.sqlite") as engine:
        engine.ingest(folder)
        yield engine


def _keywords(engine: Engine) -> TantivyKeywords:
    keywords = TantivyKeywords(engine.store, keyword_index_path(engine.settings.index_dir, "test"))
    keywords.ensure(engine.store.generations(COLLECTIONS))
    return keywords


def _found(engine: Engine, matches) -> list[tuple[str, str, int | None]]:
    files = engine.store.get_files([m.file_id for m in matches])
    return [(m.kind, Path(files[m.file_id].path).name, m.item_id) for m in matches]


@pytest.mark.parametrize(
    "query",
    ["sunset lighthouse", "runs", "dogs on beaches", "the cat", "cafe", "the who", "harbour night snow", "nothing"],
)
def test_the_same_matches_as_fts5(engine: Engine, query: str) -> None:
    """Stemming (runs ~ running, beaches ~ beach), stop words, diacritics and file names as SQLite's FTS5."""
    tantivy = _keywords(engine).search(query, 20)
    fts = keyword_search(engine.store.reads, query, 20)
    assert sorted(_found(engine, tantivy)) == sorted(_found(engine, fts))
    assert [m.score > 0 for m in tantivy] == [True] * len(tantivy)
    assert [m.score for m in tantivy] == sorted((m.score for m in tantivy), reverse=True)


def test_kinds_and_limit(engine: Engine) -> None:
    keywords = _keywords(engine)
    assert {m.kind for m in keywords.search("lighthouse cat", 10, kinds=("name",))} == {"name"}
    assert {m.kind for m in keywords.search("lighthouse cat", 10, kinds=("caption",))} == {"caption"}
    assert len(keywords.search("a cat dog boat snow lighthouse", 2)) == 2
    assert keywords.search("cat", 0) == [] and keywords.search("cat", 5, kinds=()) == []


def test_a_stale_index_is_rebuilt_and_swapped_in_whole(engine: Engine, tmp_path: Path) -> None:
    keywords = _keywords(engine)
    stamp = json.loads((keywords.path / STAMP_FILE).read_text())
    assert stamp["generations"] == engine.store.generations(COLLECTIONS) and stamp["documents"] == 4 + 5
    make_image(tmp_path / "library" / "fox.jpg", 20)
    (tmp_path / "library" / "fox.txt").write_text("a fox in the garden", encoding="utf-8")
    engine.ingest(tmp_path / "library")
    assert keywords.search("fox", 5) == []  # this instance still holds the old index...
    keywords.ensure(engine.store.generations(COLLECTIONS))
    assert {m.kind for m in keywords.search("fox", 5)} == {"caption", "name"}  # ...until the generations move
    leftovers = [p.name for p in keywords.path.parent.iterdir() if p.name.startswith(f".{keywords.path.name}")]
    assert leftovers == []


def test_the_engine_searches_through_tantivy_and_refreshes_it_after_ingest(engine: Engine, tmp_path: Path) -> None:
    assert tantivy_chosen("auto") and not tantivy_chosen("database")
    path = keyword_index_path(engine.settings.index_dir, engine.settings.database_url)
    stamp = json.loads((path / STAMP_FILE).read_text())  # written by the ingest, before any query
    assert stamp["generations"] == engine.store.generations(COLLECTIONS)
    (tmp_path / "library" / "cat.txt").write_text("a grey cat on a green sofa", encoding="utf-8")
    engine.ingest(tmp_path / "library")
    assert [h.text for h in engine.search("green", kind="caption", mode="keyword")] == ["a grey cat on a green sofa"]
    with Engine.open(tmp_path / "home2", db_url=engine.settings.database_url, keyword_engine="database") as other:
        assert [h.text for h in other.search("green", kind="caption", mode="keyword")] == ["a grey cat on a green sofa"]
    engine.reindex()
    assert json.loads((path / STAMP_FILE).read_text())["generations"] == engine.store.generations(COLLECTIONS)


def test_a_damaged_stamp_means_a_rebuild(engine: Engine) -> None:
    keywords = _keywords(engine)
    (keywords.path / STAMP_FILE).write_text("{not json")
    again = TantivyKeywords(engine.store, keywords.path)
    again.ensure(engine.store.generations(COLLECTIONS))
    assert [(kind, name) for kind, name, _ in _found(engine, again.search("sofa", 5))] == [("caption", "cat.jpg")]
    assert json.loads((keywords.path / STAMP_FILE).read_text())["format"] == FORMAT


def test_a_search_over_some_kinds_looks_further_down_until_it_has_enough(tmp_path: Path) -> None:
    """Six captions outscore the one file name that matches: a file-name search over-fetches, filters, finds
    none, and widens until it reaches the name."""
    folder = tmp_path / "many"
    for seed in range(6):
        make_image(folder / f"p{seed}.jpg", seed)
        (folder / f"p{seed}.txt").write_text("dog dog", encoding="utf-8")
    make_image(folder / "a_dog_seen_from_far_away_in_a_field_of_tall_grass_at_noon.png", 9)
    with Engine.open(tmp_path / "home", model="fake:16", db_url=f"sqlite:///{tmp_path}/db.sqlite") as engine:
        engine.ingest(folder)
        keywords = _keywords(engine)
        assert [m.kind for m in keywords.search("dog", 4)] == ["caption"] * 4  # the captions come first
        names = keywords.search("dog", 1, kinds=("name",))
        assert [(kind, name) for kind, name, _ in _found(engine, names)] == [
            ("name", "a_dog_seen_from_far_away_in_a_field_of_tall_grass_at_noon.png")
        ]
        assert keywords.search("dog", 3, kinds=("transcript",)) == []  # none of that kind: no fetch at all needed
