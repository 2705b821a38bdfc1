"""A fresh SQLite home is a copy of the migrated template: the same schema and Alembic stamp as replaying the
migrations, without replaying them; anything else still goes through Alembic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext

from mmsearch.store import database, schema_template
from mmsearch.store.database import alembic_config, connect, migrations_dir, script_head, upgrade_to_head


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MMSEARCH_CACHE_DIR", str(cache))
    return cache


def schema(path: Path) -> set[tuple[str, str, str, str]]:
    """Every table, index, trigger and view of a SQLite file, with the SQL that made it."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    connection.close()
    return {(kind, name, table, sql or "") for kind, name, table, sql in rows}


def revision(path: Path) -> str | None:
    engine = connect(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def replayed(path: Path) -> Path:
    """A database made by Alembic alone, as before the template."""
    engine = connect(f"sqlite:///{path}")
    database._alembic_upgrade(engine)
    engine.dispose()
    return path


def fresh(path: Path) -> Path:
    engine = connect(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()
    return path


def test_a_fresh_home_gets_the_replayed_schema_and_stamp(tmp_path: Path) -> None:
    first = fresh(tmp_path / "a" / "mmsearch.db")
    template = schema_template.template_path(migrations_dir())
    assert template.is_file()
    reference = replayed(tmp_path / "reference.db")
    assert schema(first) == schema(reference)
    assert revision(first) == revision(reference) == script_head()


def test_later_fresh_homes_copy_the_template_without_replaying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh(tmp_path / "a.db")

    def no_replay(engine: object) -> None:
        raise AssertionError("the migrations ran again for a fresh home")

    monkeypatch.setattr(database, "_alembic_upgrade", no_replay)
    second = fresh(tmp_path / "b.db")
    assert revision(second) == script_head()
    assert schema(second) == schema(tmp_path / "a.db")
    with sqlite3.connect(second) as connection:
        assert connection.execute("SELECT count(*) FROM media_files").fetchone() == (0,)
    connection.close()


def test_an_existing_database_at_an_older_revision_is_migrated_by_alembic(tmp_path: Path) -> None:
    fresh(tmp_path / "warm.db")  # a template exists: it must not be copied over an existing file
    path = tmp_path / "old.db"
    engine = connect(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0004")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO settings(key, value) VALUES ('kept', 'yes')")
    upgrade_to_head(engine)
    engine.dispose()
    assert revision(path) == script_head()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT value FROM settings WHERE key = 'kept'").fetchone() == ("yes",)
    check.close()


def test_a_template_at_another_revision_is_not_used(tmp_path: Path) -> None:
    template = schema_template.template_path(migrations_dir())
    template.parent.mkdir(parents=True)
    stale = replayed(tmp_path / "stale.db")
    with sqlite3.connect(stale) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    connection.close()
    template.write_bytes(stale.read_bytes())
    made = fresh(tmp_path / "new.db")
    assert revision(made) == script_head()
    assert schema(made) == schema(replayed(tmp_path / "reference.db"))


def test_an_unwritable_cache_falls_back_to_alembic(tmp_path: Path, own_cache: Path) -> None:
    own_cache.write_text("a file where the cache folder should be")
    made = fresh(tmp_path / "new.db")
    assert revision(made) == script_head()
    assert not any(path.suffix == ".db" for path in own_cache.parent.glob("schema/*"))
