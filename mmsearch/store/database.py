"""Database connections and schema migrations (Alembic)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from mmsearch.errors import ConfigError, DatabaseError, MissingDependencyError
from mmsearch.hints import install_hint
from mmsearch.store.lock import MIGRATE, database_lock
from mmsearch.store.sqlite_store import sqlite_pragmas


def connect(url: str) -> SqlEngine:
    """Create a SQLAlchemy engine; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    kwargs: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    in_memory = is_sqlite and parsed.database in (None, "", ":memory:")
    if in_memory:
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif is_sqlite and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(f"no driver for {parsed.drivername}: {install_hint('postgres')} ({exc})") from exc
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas(wal=not in_memory))
    return engine


def _sqlite_pragmas(wal: bool):
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in sqlite_pragmas(wal):
            cursor.execute(pragma)
        cursor.close()

    return on_connect


def migrations_dir() -> Path:
    """The Alembic script directory shipped with the package (``migrations/`` in a checkout)."""
    return Path(str(resources.files("mmsearch.migrations")))


def alembic_config(engine: SqlEngine | None = None, connection: Any = None):
    """An Alembic ``Config`` bound to an engine or an open connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        url = engine.url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    config.attributes["connection"] = connection
    return config


def script_head() -> str | None:
    """The newest migration's revision, read from the files without importing Alembic (~0.1 s).

    None unless the revisions form one chain with a single head (then Alembic decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (migrations_dir() / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is None:
            return None
        revisions.add(revision.group(1))
        down = _DOWN_REVISION.search(text)
        if down is None:
            return None
        if down.group(1) != "None":
            parents.add(down.group(1).strip("\"'"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


_REVISION = re.compile(r"^revision(?::[^=\n]*)? = [\"']([^\"']+)[\"']\s*$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?::[^=\n]*)? = (None|[\"'][^\"']+[\"'])\s*$", re.MULTILINE)


def database_exists(url: str) -> bool:
    """Whether the database at ``url`` exists with mmsearch's schema; creates nothing (no file, no folder)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        return parsed.database not in (None, "", ":memory:") and Path(parsed.database).is_file()
    engine = connect(url)
    try:
        return _current_revision(engine) is not None
    finally:
        engine.dispose()


def _current_revision(engine: SqlEngine) -> str | None:
    """The database's Alembic revision, or None (no version table yet, or it cannot be read)."""
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except Exception:  # no table yet, or a driver error: Alembic looks properly
        return None
    return rows[0][0] if len(rows) == 1 else None


def upgrade_to_head(engine: SqlEngine) -> None:
    """Bring the schema to the newest migration; a no-op when it is already there.

    The usual case (already at the head) is checked without Alembic, which keeps it off the query path.
    A new SQLite file is a copy of the migrated template (:mod:`mmsearch.store.schema_template`, no Alembic).
    Otherwise the migrations run under the database's migration lock (a file lock beside a SQLite file, an
    advisory lock on PostgreSQL), so processes opening a fresh home at once create the schema once.
    """
    head = script_head()
    if head is not None and _seeded(engine, head):
        return
    if head is not None and _current_revision(engine) == head:
        return
    _alembic_upgrade(engine)


def _seeded(engine: SqlEngine, head: str) -> bool:
    """A new SQLite file made as a copy of the migrated template (:mod:`mmsearch.store.schema_template`); False
    for anything else (an existing file, another database, no usable template), which Alembic then handles."""
    from mmsearch.store import schema_template

    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return False
    path = Path(database)
    if path.exists():
        return False
    template = schema_template.ensure_template(migrations_dir(), head, _migrate_url)
    if template is None:
        return False
    with database_lock(engine, MIGRATE, purpose="schema upgrade"):
        if not schema_template.seed(path, template):
            return False
    return _current_revision(engine) == head


def _migrate_url(url: str) -> None:
    """Run every migration on the database at ``url`` (a scratch file for the schema template)."""
    engine = connect(url)
    try:
        _alembic_upgrade(engine)
    finally:
        engine.dispose()


def _alembic_upgrade(engine: SqlEngine) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(engine)
    scripts = ScriptDirectory.from_config(config)
    head = scripts.get_current_head()
    with database_lock(engine, MIGRATE, purpose="schema upgrade"), engine.begin() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
            raise DatabaseError(
                f"the database {engine.url.render_as_string()} has schema revision {current!r}, which this "
                f"mmsearch does not know (it knows up to {head!r}): it was written by a newer mmsearch; upgrade "
                "mmsearch, or use another home"
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
