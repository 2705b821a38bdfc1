"""A fresh SQLite home gets its schema as a copy of an empty database already migrated to the head.

Replaying every Alembic migration costs a fresh home about 0.3 s of CPU on a quiet 2-core machine (most of it
importing Alembic), more than the rest of opening it. The result of that replay is the same for every new SQLite
database, so it is made once per set of migrations, on a scratch file in the shared cache (never from a user's
database, so it holds no data), and each new home starts as a byte copy of it: the same tables, indexes, triggers
and ``alembic_version`` stamp (checked against the head before the copy is used). The template's name carries a
hash of the migration scripts and the SQLite library version, so a changed or added migration makes a new one.
PostgreSQL, an in-memory database and an existing file always go through Alembic.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from mmsearch.cachedir import cache_root

SCHEMA_FOLDER = "schema"


def template_path(migrations: Path) -> Path:
    """Where the template for these migration scripts (and this SQLite library) lives in the shared cache."""
    digest = hashlib.sha256(sqlite3.sqlite_version.encode())
    for path in sorted([migrations / "env.py", *(migrations / "versions").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return cache_root() / SCHEMA_FOLDER / f"sqlite-{digest.hexdigest()[:20]}.db"


def stamped_revision(database: Path) -> str | None:
    """The ``alembic_version`` a SQLite file holds (read-only), or None when it has none or cannot be read."""
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(rows[0][0]) if len(rows) == 1 else None


def ensure_template(migrations: Path, head: str, migrate: Callable[[str], None]) -> Path | None:
    """The template for ``head``, made now by ``migrate(url)`` on a scratch file when missing; None when the cache
    cannot hold one (not writable) or what it holds is not at ``head`` (then Alembic runs as before)."""
    try:
        path = template_path(migrations)
    except OSError:  # the scripts cannot be read: Alembic will say why
        return None
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=".schema-", dir=path.parent))
        except OSError:
            return None
        try:
            migrate(f"sqlite:///{scratch / 'schema.db'}")
            _compact(scratch / "schema.db", scratch / "template.db")
            os.replace(scratch / "template.db", path)
        except (OSError, sqlite3.Error):
            return None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return path if stamped_revision(path) == head else None


def seed(database: Path, template: Path) -> bool:
    """Copy ``template`` to ``database`` unless a database (or its write-ahead log) is already there; True when
    copied. The caller holds the database's migration lock."""
    if _exists(database):
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    staging = database.with_name(f".{database.name}.seed-{os.getpid()}")
    try:
        shutil.copyfile(template, staging)
        os.replace(staging, database)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return True


def _exists(database: Path) -> bool:
    return database.exists() or Path(f"{database}-wal").exists()


def _compact(source: Path, target: Path) -> None:
    """One self-contained file (no write-ahead log beside it) with the whole schema of ``source``."""
    connection = sqlite3.connect(source)
    try:
        connection.execute("VACUUM INTO ?", (str(target),))
    finally:
        connection.close()
