"""The stdlib store (``mmsearch.store.sqlite_store``) against the SQLAlchemy store on the same populated home: the
same records from every read, the same search results, a query cache each can read from the other, and the
fall-backs to SQLAlchemy (a schema to migrate, a new database, an index or keyword index to rebuild)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import make_url

from mmsearch import Engine
from mmsearch.errors import NoIndexError
from mmsearch.kinds import AUDIO, CAPTION, COLLECTIONS, FRAME, TRANSCRIPT, VIDEO
from mmsearch.search.filters import Filters
from mmsearch.store import sqlite_store
from mmsearch.store.database import script_head
from mmsearch.store.keyword import keyword_search
from mmsearch.store.models import QueryCacheEntry
from mmsearch.store.opening import open_metadata_store, open_store
from mmsearch.store.records import FileRecord
from mmsearch.store.repository import MetadataStore
from mmsearch.store.sql_reads import QueryStore
from mmsearch.store.sqlite_store import SCHEMA_HEAD, SqliteStore, database_name, sqlite_file
from mmsearch.store.text_items import TextRecord
from tests.conftest import make_image

DIM = 32
CAPTIONS = {
    "dog": "a brown dog running on the beach",
    "cat": "a grey cat asleep on a sofa",
    "boat": "a red boat in the harbour at sunset",
    "snow": "children playing in the snow",
    "gone": "a yellow kite over the dunes",
}


def _texts(kind: str, key: str, lines: list[tuple[str, float, float, float | None]]) -> list[TextRecord]:
    return [
        TextRecord(kind, key, "asr" if kind == TRANSCRIPT else "keyframe", None, i, text, start, end, f"{key}#{i}", at)
        for i, (text, start, end, at) in enumerate(lines)
    ]


def _add_audio_and_video(store: MetadataStore, model_id: int) -> None:
    """A recording with transcript segments and a video with keyframes and a transcript, written directly."""
    talk = _texts(TRANSCRIPT, "/media/talk.wav", [("welcome to the harbour tour", 0.0, 4.0, None)])
    talk += _texts(TRANSCRIPT, "/media/talk.wav:2", [("the boats leave at sunset", 4.0, 9.5, None)])
    frames = _texts(FRAME, "/media/clip.mp4", [("", 0.0, 6.0, 1.5), ("", 6.0, 12.0, 8.0)])
    spoken = _texts(TRANSCRIPT, "/media/clip.mp4:t", [("a dog on the beach", 0.5, 5.0, None)])
    rng = np.random.default_rng(7)
    vectors = {}
    for record in [*talk, *frames, *spoken]:
        vector = rng.normal(size=DIM).astype(np.float32)
        vectors[record.content_hash] = vector / np.linalg.norm(vector)
    files = [
        FileRecord("/media/talk.wav", AUDIO, 10, 1, "talk-hash"),
        FileRecord("/media/clip.mp4", VIDEO, 20, 2, "clip-hash", 640, 360, taken_at=1_200_000_000.0),
    ]
    texts = {"/media/talk.wav": {"a": talk}, "/media/clip.mp4": {"f": frames, "t": spoken}}
    store.write_assets(model_id, files, vectors, texts, image_changed=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite home with captioned photos, a file name to match, an audio file and a video (transcripts,
    keyframes), a deleted photo (a tombstone in the index), generations past zero and cached queries."""
    root = tmp_path_factory.mktemp("populated")
    library = root / "library"
    for seed, (stem, caption) in enumerate(CAPTIONS.items(), 1):
        make_image(library / "captioned" / f"{stem}.jpg", seed)
        (library / "captioned" / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
        os.utime(library / "captioned" / f"{stem}.jpg", ns=(seed * 10**18, seed * 10**18))
    make_image(library / "plain" / "lighthouse_at_night.png", 11)
    make_image(library / "plain" / "untitled.jpg", 12)
    with Engine.open(root / "home", model=f"fake:{DIM}", workers=1) as engine:
        engine.ingest(library)
        _add_audio_and_video(engine.store, engine.models.active()[0])
        (library / "captioned" / "gone.jpg").unlink()
        engine.ingest(library)
        engine.search_many(["a dog", "the sea"], k=3)  # cached query vectors
    return root / "home"


def url_of(home: Path) -> str:
    return f"sqlite:///{home / 'mmsearch.db'}"


@pytest.fixture
def stores(home: Path):
    light = open_store(url_of(home))
    full = open_metadata_store(url_of(home))
    assert isinstance(light, SqliteStore) and isinstance(full, MetadataStore)
    yield light, full
    light.close()
    full.close()


def test_the_schema_head_constant_is_the_migrations_head() -> None:
    from alembic.script import ScriptDirectory

    from mmsearch.store.database import alembic_config

    assert SCHEMA_HEAD == script_head() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_every_read_gives_the_same_records(stores: tuple[QueryStore, QueryStore]) -> None:
    light, full = stores
    model_id, identity = full.active_model() or (0, None)
    assert light.active_model() == (model_id, identity) and identity is not None
    assert light.generations(COLLECTIONS) == full.generations(COLLECTIONS)
    assert light.generations(COLLECTIONS)[TRANSCRIPT] > 0 and light.generation() > 0
    assert [light.generation(c) for c in COLLECTIONS] == [full.generation(c) for c in COLLECTIONS]
    assert light.setting("active_model_id") == full.setting("active_model_id")
    assert light.setting("no such key") is None is full.setting("no such key")
    ids = list(range(-1, 40))  # beyond both ends: the deleted photo's id and ids never used are left out
    files = light.get_files(ids)
    assert files == full.get_files(ids) and {f.kind for f in files.values()} == {"image", AUDIO, VIDEO}
    assert len(files) == 8  # six photos (one deleted) and the two media files
    texts = light.get_texts(ids)
    assert texts == full.get_texts(ids) and {t.kind for t in texts.values()} == {CAPTION, TRANSCRIPT, FRAME}
    assert any(t.at is not None for t in texts.values()) and any(t.start is not None for t in texts.values())
    for kind in (CAPTION, TRANSCRIPT, FRAME):
        assert light.text_item_ids_of(files, kind) == full.text_item_ids_of(files, kind)
    _same_vectors(light.image_vectors_of(model_id, files), full.image_vectors_of(model_id, files))
    _same_vectors(light.vectors_of_texts(model_id, texts), full.vectors_of_texts(model_id, texts))
    asked = ["a dog", "the sea", "never asked"]
    _same_vectors(light.cached_query_vectors(model_id, asked), full.cached_query_vectors(model_id, asked))
    assert set(light.cached_query_vectors(model_id, asked)) == {"a dog", "the sea"}
    assert light.database_name == full.database_name


@pytest.mark.parametrize(
    "accepts",
    [lambda f: True, lambda f: f.kind == VIDEO, lambda f: f.path.endswith(".png"), lambda f: False],
)
def test_any_file_agrees(stores: tuple[QueryStore, QueryStore], accepts) -> None:
    light, full = stores
    assert light.any_file(accepts, batch=3) == full.any_file(accepts, batch=3)


@pytest.mark.parametrize("query", ["sunset", "dog beach", "lighthouse", "harbour tour", "the", "zzz"])
@pytest.mark.parametrize("kinds", [(CAPTION, "name"), (TRANSCRIPT,), (CAPTION, TRANSCRIPT, "name")])
def test_keyword_search_agrees(stores: tuple[QueryStore, QueryStore], query: str, kinds: tuple[str, ...]) -> None:
    light, full = stores
    assert keyword_search(light.reads, query, 20, kinds) == keyword_search(full.reads, query, 20, kinds)


def _same_vectors(left: dict, right: dict) -> None:
    assert left.keys() == right.keys() and left
    for key, vector in left.items():
        np.testing.assert_array_equal(vector, right[key])


SEARCHES = [
    ("a dog on the beach", {}),
    ("sunset", {"kind": "any"}),
    ("boats at sunset", {"kind": TRANSCRIPT}),
    ("a dog", {"kind": VIDEO}),
    ("a dog", {"kind": FRAME}),
    ("harbour", {"kind": AUDIO, "mode": "keyword"}),
    ("lighthouse", {"mode": "keyword"}),
    ("snow", {"filters": Filters(until=2.5e9)}),
    ("cat", {"filters": Filters(ext=("png",)), "explain": True}),
    ("cat", {"filters": Filters(path="/nowhere")}),
    ("red boat", {"kind": CAPTION, "diverse": True}),
]


@pytest.mark.parametrize("keyword_engine", ["tantivy", "database"])
def test_whole_searches_are_identical(home: Path, keyword_engine: str) -> None:
    """The engine on the stdlib store and the engine on the SQLAlchemy store: the same hits, scores and notes."""
    with Engine.open(home, keyword_engine=keyword_engine) as light:
        assert isinstance(light.query_store, SqliteStore)
        full = Engine(light.settings, open_metadata_store(light.database_url))
        try:
            found = 0
            for text, options in SEARCHES:
                expected = full.search(text, k=4, **options)
                got = light.search(text, k=4, **options)
                assert (got, got.note) == (expected, expected.note), (text, options)
                found += bool(got)
            assert found == len(SEARCHES) - 1  # all but the one whose filter lets nothing through
            assert not light.query_store.full_open  # every search was read with sqlite3
        finally:
            full.close()


def test_query_vectors_cached_through_sqlite3_read_back_through_sqlalchemy(home: Path, monkeypatch) -> None:
    light = open_store(url_of(home))
    full = open_metadata_store(url_of(home))
    model_id = full.active_model()[0]
    vectors = {f"cached {i}": np.full(DIM, i, dtype=np.float32) for i in range(3)}
    light.cache_query_vectors(model_id, vectors)
    light.cache_query_vectors(model_id, {"cached 0": np.zeros(DIM, dtype=np.float32)})  # first writer wins
    _same_vectors(full.cached_query_vectors(model_id, list(vectors)), vectors)
    with full.session() as session:
        created = session.scalars(select(QueryCacheEntry.created_at).order_by(QueryCacheEntry.id.desc())).first()
    assert created is not None and abs(created - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).seconds < 60
    monkeypatch.setattr(sqlite_store, "QUERY_CACHE_LIMIT", 2)
    light.cache_query_vectors(model_id, {"newest": np.ones(DIM, dtype=np.float32)})
    assert set(full.cached_query_vectors(model_id, [*vectors, "newest"])) == {"cached 2", "newest"}
    light.close()
    full.close()


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00?"), min_size=1))
def test_urls_are_read_and_named_as_sqlalchemy_does(path: str) -> None:
    url = "sqlite:///" + path
    parsed = make_url(url)
    if parsed.database in ("", ":memory:"):
        assert sqlite_file(url) is None
        return
    assert sqlite_file(url) == parsed.database
    assert database_name(parsed.database) == parsed.render_as_string(hide_password=True)


def test_other_urls_go_to_sqlalchemy() -> None:
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:////tmp/x.db", "sqlite:////tmp/x.db?mode=ro"):
        assert sqlite_file(url) is None
    assert sqlite_file("postgresql://u:p@host/db") is None


def test_a_new_database_and_a_schema_to_migrate_open_the_sqlalchemy_store(tmp_path: Path, home: Path) -> None:
    new = tmp_path / "new.db"
    store = open_store(f"sqlite:///{new}")
    assert isinstance(store, MetadataStore) and new.is_file()  # created, at the head
    store.close()
    reopened = open_store(f"sqlite:///{new}")
    assert isinstance(reopened, SqliteStore)
    reopened.close()
    with sqlite3.connect(new) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'a-later-revision'")
    assert SqliteStore.at_head(str(new), lambda: pytest.fail("not opened")) is None  # not ours to read
    with sqlite3.connect(new) as connection:
        connection.execute("DROP TABLE alembic_version")
    assert SqliteStore.at_head(str(new), lambda: pytest.fail("not opened")) is None
    with pytest.raises(NoIndexError):
        Engine.open(tmp_path / "empty-home", create=False)
    assert not (tmp_path / "empty-home" / "mmsearch.db").exists()


def test_a_stale_index_is_rebuilt_through_the_sqlalchemy_store(tmp_path: Path, photo_dir: Path) -> None:
    (photo_dir / "a.txt").write_text("a dog on the beach\n", encoding="utf-8")
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
    with Engine.open(home) as engine:
        expected = engine.search("a dog on the beach", k=5, kind="any")
        assert isinstance(engine.query_store, SqliteStore) and not engine.query_store.full_open
    indexes = list((home / "indexes").glob("index-*.mmidx"))
    stamps = list((home / "indexes").glob("keyword-*.tantivy/stamp.json"))
    assert indexes and stamps
    for path in [*indexes, *stamps]:
        path.unlink()
    with Engine.open(home) as engine:
        got = engine.search("a dog on the beach", k=5, kind="any")
        assert engine.query_store.full_open  # the rebuilds read the database through SQLAlchemy
    assert got == expected and expected
    assert all(path.is_file() for path in [*indexes, *stamps])


def test_a_home_to_migrate_opens_the_sqlalchemy_store_and_then_reads_with_sqlite3(
    tmp_path: Path, photo_dir: Path
) -> None:
    from alembic import command

    from mmsearch.store.database import alembic_config, connect

    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        expected = engine.search("red", k=3)
    database = connect(url_of(home))
    command.downgrade(alembic_config(database), "-1")
    database.dispose()
    with Engine.open(home) as engine:
        assert isinstance(engine.query_store, MetadataStore)  # it migrated the schema
        assert [h.path for h in engine.search("red", k=3)] == [h.path for h in expected]
    with Engine.open(home) as engine:
        assert isinstance(engine.query_store, SqliteStore)
        assert engine.search("red", k=3) == expected


def test_a_failed_cache_write_leaves_no_transaction_behind(home: Path) -> None:
    """A write that fails (here: the database is locked by a writer past the busy timeout) is rolled back, and its
    connection reads the latest commits afterwards."""
    store = open_store(url_of(home))
    assert isinstance(store, SqliteStore)
    model_id = store.active_model()[0]
    writer = sqlite3.connect(home / "mmsearch.db", timeout=0.1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    with store.rows_source.connection() as connection:
        connection.execute("PRAGMA busy_timeout=50")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.cache_query_vectors(model_id, {"blocked": np.ones(DIM, dtype=np.float32)})
    with store.rows_source.connection() as connection:
        assert not connection.in_transaction
    writer.execute("INSERT INTO settings (key, value) VALUES ('written meanwhile', '1')")
    writer.execute("COMMIT")
    assert store.setting("written meanwhile") == "1"
    writer.execute("DELETE FROM settings WHERE key = 'written meanwhile'")
    writer.close()
    store.close()
