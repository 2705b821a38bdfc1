"""The metadata store on a real PostgreSQL server, started in a temporary folder for these tests.

Skipped, with the reason, where PostgreSQL's server programs or psycopg are missing, except when
``MMSEARCH_REQUIRE_POSTGRES`` is set: ``scripts/test`` (what CI runs) installs Debian's postgresql where it
can and then sets it, so there a server that cannot start is a failure.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pg_server import fresh_database, postgres_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres_url():
    yield from postgres_server()


def test_engine_on_postgres(postgres_url: str, tmp_path: Path, photo_dir: Path) -> None:
    from mmsearch import Engine

    with Engine.open(tmp_path / "home", model="fake:16", db_url=postgres_url) as engine:
        report = engine.ingest(photo_dir)
        assert (report.added, report.failed) == (6, [])
        hits = engine.search(image=photo_dir / "a.jpg", k=2)
        assert hits[0].path == str(photo_dir / "a.jpg")
        (photo_dir / "b.png").unlink()
        again = engine.ingest(photo_dir)
        assert (again.removed, again.skipped) == (1, 5)
        status = engine.status()
        assert status.database.startswith("postgresql+psycopg://")
        assert status.files_by_kind == {"image": 5}
    with Engine.open(tmp_path / "home", db_url=postgres_url) as engine:
        assert engine.search("cached? no, new", k=10)[0].rank == 1


def test_migrations_match_the_models_on_postgres(postgres_url: str) -> None:
    from alembic import command

    from mmsearch.store.database import alembic_config, connect, upgrade_to_head

    engine = connect(postgres_url)
    upgrade_to_head(engine)
    with engine.connect() as connection:
        command.check(alembic_config(connection=connection))
    engine.dispose()


def test_float32_vectors_migrate_to_float16_and_back_on_postgres(postgres_url: str) -> None:
    from tests.unit.test_float16_upgrade import check_vector_rows_migrate

    check_vector_rows_migrate(fresh_database(postgres_url, "float16_vectors"))


@pytest.mark.parametrize("keyword_engine", ["database", "tantivy"])
def test_keyword_and_hybrid_search_on_postgres(postgres_url: str, tmp_path: Path, keyword_engine: str) -> None:
    """The same keyword interface as SQLite's FTS5, on PostgreSQL full text (tsvector, ts_rank_cd), and the same
    answers from the Tantivy index built from either database."""
    from mmsearch import Engine
    from mmsearch.store.keyword import keyword_search
    from tests.conftest import make_image

    folder = tmp_path / "library"
    captions = {"dog": "a brown dog running on the beach", "cat": "a grey cat asleep on a sofa"}
    for seed, (stem, caption) in enumerate(captions.items(), 1):
        make_image(folder / f"{stem}.jpg", seed)
        (folder / f"{stem}.txt").write_text(caption, encoding="utf-8")
    make_image(folder / "lighthouse_at_night.png", 3)
    results = {}
    database = fresh_database(postgres_url, f"keywords_{keyword_engine}")  # the other parameter's rows left out
    for name, url in (("postgres", database), ("sqlite", "sqlite://")):
        home = tmp_path / f"home-{name}"
        with Engine.open(home, model="fake:16", db_url=url, keyword_engine=keyword_engine) as engine:
            assert engine.ingest(folder).failed == []
            stem = lambda hits: [Path(hit.path).stem for hit in hits]  # noqa: E731
            results[name] = {
                "runs": stem(engine.search("runs", mode="keyword")),  # stemmed: running
                "names": stem(engine.search("lighthouse night", mode="keyword")),
                "either": sorted(stem(engine.search("sofa beach", mode="keyword"))),
                "caption": [h.text for h in engine.search("grey", kind="caption", mode="keyword")],
                "hybrid": len(engine.search("lighthouse", k=3, explain=True)),
            }
            matches = keyword_search(engine.store.reads, "lighthouse", 5)
            assert [(m.kind, m.item_id) for m in matches] == [("name", None)] and matches[0].score > 0
            (folder / "cat.txt").unlink()  # a removed sidecar leaves the keyword index too
            engine.ingest(folder)
            assert engine.search("sofa", mode="keyword") == []
            (folder / "cat.txt").write_text(captions["cat"], encoding="utf-8")
    assert (
        results["postgres"]
        == results["sqlite"]
        == {
            "runs": ["dog"],
            "names": ["lighthouse_at_night"],
            "either": ["cat", "dog"],
            "caption": [captions["cat"]],
            "hybrid": 3,
        }
    )


def test_one_writer_at_a_time_on_postgres(postgres_url: str, tmp_path: Path, photo_dir: Path) -> None:
    """The writer lock is a PostgreSQL advisory lock on the database (issue 12, item 2)."""
    from mmsearch import Engine
    from mmsearch.errors import LockBusyError
    from mmsearch.store.lock import database_lock

    busy = r"another ingest or reindex is running \(pid server backend"
    with (
        Engine.open(tmp_path / "a", model="fake:16", db_url=postgres_url) as holder,
        Engine.open(tmp_path / "b", model="fake:16", db_url=postgres_url) as other,
    ):
        with database_lock(holder.store.engine, purpose="ingest"), pytest.raises(LockBusyError, match=busy):
            other.ingest(photo_dir, wait=False)
        assert other.ingest(photo_dir, wait=False).failed == []


OPEN_AT = """
import sys, time
from mmsearch.store.database import connect, upgrade_to_head
engine = connect(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
upgrade_to_head(engine)
"""


def test_a_fresh_postgres_database_opened_by_several_processes_at_once(postgres_url: str) -> None:
    """Migrations run under an advisory lock (issue 12, item 4)."""

    from sqlalchemy import text

    from mmsearch.store.database import connect

    admin = connect(postgres_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("CREATE DATABASE fresh_race"))
    admin.dispose()
    url = postgres_url.replace("/postgres?", "/fresh_race?")
    start = str(time.time() + 3)
    runs = [
        subprocess.Popen([sys.executable, "-c", OPEN_AT, url, start], stderr=subprocess.PIPE, text=True)
        for _ in range(5)
    ]
    for run in runs:
        _out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err


def test_text_items_are_inserted_in_one_statement_with_the_same_rows_on_postgres(postgres_url: str) -> None:
    from mmsearch.store.database import connect, upgrade_to_head
    from mmsearch.store.repository import MetadataStore
    from tests.unit.test_text_item_writes import check_text_item_writes

    engine = connect(fresh_database(postgres_url, "text_item_writes"))
    try:
        upgrade_to_head(engine)
        check_text_item_writes(MetadataStore(engine), "/pg-photos")
    finally:
        engine.dispose()
