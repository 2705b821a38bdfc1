"""Which store a home's database gets, decided in one place: :func:`open_store`.

A SQLite file whose schema is at the head gets the stdlib store (:class:`~mmsearch.store.sqlite_store.SqliteStore`:
no SQLAlchemy on a query's path, the SQLAlchemy store opened behind it on first need); everything else (PostgreSQL,
an in-memory or new database, a schema to migrate) gets the SQLAlchemy store at once, created or upgraded.
SQLAlchemy and Alembic are imported only on that second path.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.store.sql_reads import QueryStore
from mmsearch.store.sqlite_store import SqliteStore, sqlite_file

if TYPE_CHECKING:
    from mmsearch.store.repository import MetadataStore


def open_store(url: str) -> QueryStore:
    """The store of the database at ``url`` (created or upgraded to the schema's head where needed)."""
    path = sqlite_file(url)
    if path is not None and Path(path).is_file():
        store = SqliteStore.at_head(path, functools.partial(open_metadata_store, url))
        if store is not None:
            return store
    return open_metadata_store(url)


def open_metadata_store(url: str) -> MetadataStore:
    """The SQLAlchemy store of the database at ``url``, its schema brought to the head (creating it if new)."""
    from mmsearch.store.database import connect, upgrade_to_head
    from mmsearch.store.repository import MetadataStore

    engine = connect(url)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return MetadataStore(engine)


def database_present(url: str) -> bool:
    """Whether the database at ``url`` exists with mmsearch's schema; creates nothing (no file, no folder)."""
    path = sqlite_file(url)
    if path is not None:
        return Path(path).is_file()
    from mmsearch.store.database import database_exists

    return database_exists(url)
