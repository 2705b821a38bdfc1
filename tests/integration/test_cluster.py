"""The "cluster" configuration end to end on one machine: PostgreSQL metadata + vectors in a real Milvus (Milvus Lite,
the embedded server the ``milvus-lite`` package starts) — against the embedded default (SQLite + FAISS files).

Both servers start once for the module. Skipped with the reason where pymilvus/milvus-lite are missing (the
``milvus`` extra); PostgreSQL as in test_postgres.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_image
from tests.pg_server import fresh_database, postgres_server

pytestmark = pytest.mark.integration

CAPTIONS = {
    "dog": "a brown dog running on the beach",
    "cat": "a grey cat asleep on a sofa",
    "boat": "a red boat in the harbour at dusk",
    "bike": "a child riding a bike in the park",
}


@pytest.fixture(scope="module")
def postgres_url():
    yield from postgres_server()


@pytest.fixture(scope="module")
def milvus_url(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("pymilvus", reason="pymilvus not installed (pip install 'mmsearch[milvus]')")
    pytest.importorskip("milvus_lite", reason="milvus-lite not installed (pip install 'mmsearch[milvus]')")
    from mmsearch.index.milvus_index import close_clients

    url = str(tmp_path_factory.mktemp("milvus") / "vectors.db")
    try:
        yield url
    finally:
        close_clients()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    for seed, (stem, caption) in enumerate(CAPTIONS.items(), 1):
        make_image(folder / f"{stem}.jpg", seed)
        (folder / f"{stem}.txt").write_text(caption, encoding="utf-8")
    for seed in range(5, 11):
        make_image(folder / "plain" / f"p{seed}.png", seed)
    return folder


def _answers(engine) -> dict[str, list[tuple[str, float]]]:
    """What several kinds of search return: (file name or text, rounded score) per hit."""
    from mmsearch.search.filters import Filters

    def names(hits):
        return [(Path(hit.path).name if hit.kind != "caption" else hit.text, round(hit.score, 5)) for hit in hits]

    library = Path(engine.search("dog", k=1, mode="keyword")[0].path).parent
    return {
        "dense": names(engine.search("a dog on the beach", k=5, mode="dense")),
        "image": names(engine.search(image=library / "plain" / "p7.png", k=4)),
        "hybrid": names(engine.search("red boat", k=5)),
        "keyword": names(engine.search("sofa", mode="keyword")),
        "captions": names(engine.search("a cat", k=3, kind="caption")),
        "any": names(engine.search("harbour", k=4, kind="any")),
        "filtered": names(engine.search("dog", k=10, filters=Filters(path=str(library / "plain")))),
        "pngs": names(engine.search("dog", k=3, filters=Filters(ext=("png",)))),
    }


def _milvus_cache(engine, collection: str = "image"):
    model_id, identity = engine.store.active_model()
    return engine.models.index_cache(model_id, identity, collection)


def test_postgres_and_milvus_answer_like_sqlite_and_faiss(
    postgres_url: str, milvus_url: str, tmp_path: Path, library: Path
) -> None:
    from mmsearch import Engine
    from mmsearch.index.milvus_index import MilvusIndexCache

    with Engine.open(tmp_path / "embedded", model="fake:16", db_url="sqlite://") as embedded:
        assert embedded.ingest(library).failed == []
        expected = _answers(embedded)
    db_url = fresh_database(postgres_url, "answers")
    with Engine.open(tmp_path / "cluster", model="fake:16", db_url=db_url, vector_url=milvus_url) as cluster:
        report = cluster.ingest(library)
        assert (report.added, report.failed) == (10, [])
        cache = _milvus_cache(cluster)
        assert isinstance(cache, MilvusIndexCache) and cache.kind == "milvus"
        assert len(cache.get()) == 10 and len(_milvus_cache(cluster, "caption").get()) == 4
        assert cache.stamped_generation() == cluster.store.generation("image")
        assert _answers(cluster) == expected
        assert not any(cluster.settings.index_dir.glob("*.mmidx"))  # no FAISS file was written

        (library / "plain" / "p5.png").unlink()
        (library / "cat.txt").write_text("a grey cat asleep on a green sofa", encoding="utf-8")
        again = cluster.ingest(library)
        assert (again.removed, again.failed) == (1, [])
        assert len(_milvus_cache(cluster).get()) == 9 and len(_milvus_cache(cluster, "caption").get()) == 4
        assert "p5.png" not in [Path(hit.path).name for hit in cluster.search("dog", k=20, mode="dense")]
        assert cluster.search("green", kind="caption", mode="keyword")[0].text == "a grey cat asleep on a green sofa"


def test_a_collection_behind_the_database_or_of_another_model_is_rebuilt(
    postgres_url: str, milvus_url: str, tmp_path: Path, library: Path
) -> None:
    from mmsearch import Engine

    home, db_url = tmp_path / "cluster", fresh_database(postgres_url, "stale")
    with Engine.open(home, model="fake:16", db_url=db_url, vector_url=milvus_url) as engine:
        engine.ingest(library)
        cache = _milvus_cache(engine)
        index = cache.get()
        ids = index.search(np.ones((1, 16), dtype=np.float32), 10)[1][0]
        # Another process (or a crash) left the collection behind the database: an item missing, the stamp old.
        index.remove(ids[:1])
        cache._stamp(cache.generation - 1)
        assert len(index) == 9
    with Engine.open(home, db_url=db_url, vector_url=milvus_url) as engine:
        assert len(_milvus_cache(engine).get()) == 10  # detected as stale and rebuilt from PostgreSQL
        cache = _milvus_cache(engine)
        cache._stamp(cache.generation)
        cache._index.remove(ids[:2])
        # A collection stamped for another model is not trusted either.
        state = {**(cache._state() or {}), "fingerprint": "another model"}
        row = {"name": cache.name, "state": json.dumps(state), "vector": [0.0, 0.0]}
        cache._client.upsert("mmsearch_meta", data=[row])
    with Engine.open(home, db_url=db_url, vector_url=milvus_url) as engine:
        assert len(_milvus_cache(engine).get()) == 10
        cache = _milvus_cache(engine)
        cache._client.drop_collection(cache.name)  # gone altogether: `reindex` rebuilds it
        result = engine.reindex()
        assert result["indexes"]["image"]["vectors"] == 10 and result["indexes"]["caption"]["vectors"] == 4
        assert len(_milvus_cache(engine).get()) == 10
        assert engine.search(image=library / "dog.jpg", k=1)[0].path == str(library / "dog.jpg")


def test_the_cli_on_postgres_and_milvus(postgres_url: str, milvus_url: str, tmp_path: Path, library: Path) -> None:
    from click.testing import CliRunner

    from mmsearch.cli import cli

    db_url = fresh_database(postgres_url, "cli")
    base = ["--home", str(tmp_path / "home"), "--db-url", db_url, "--vector-url", milvus_url]
    runner = CliRunner()
    ingested = runner.invoke(cli, [*base, "--model", "fake:16", "ingest", str(library), "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.output)["added"] == 10
    found = runner.invoke(cli, [*base, "query", "red boat", "--json", "--no-service"])
    assert found.exit_code == 0, found.output
    assert Path(json.loads(found.output)["hits"][0]["path"]).name == "boat.jpg"
    status = runner.invoke(cli, [*base, "status", "--json"])
    assert status.exit_code == 0, status.output
    indexes = json.loads(status.output)["indexes"]
    assert {name: (facts["kind"], facts["vectors"], facts["state"]) for name, facts in indexes.items()} == {
        "image": ("milvus", 10, "up to date"),
        "caption": ("milvus", 4, "up to date"),
        "transcript": ("milvus", 0, "up to date"),
        "frame": ("milvus", 0, "up to date"),  # video keyframes: a collection like the others
    }
