"""Locks on the database: one writer (ingest, reindex) at a time, and schema migrations one process at a time.

The database is the shared resource, so the lock is on it: for SQLite an advisory file lock on a file beside the
database file (``<db>.writer.lock``, ``<db>.migrate.lock``); for PostgreSQL a session advisory lock
(``pg_advisory_lock``, scoped to the database by the server). In-memory SQLite needs none (one process).

A writer lock records who holds it (pid, start time, what for) so that another process can say
"another ingest is running (pid N, since ...)". Waiting is the default; ``wait=False`` fails fast with
:class:`~mmsearch.errors.LockBusyError`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import text

from mmsearch.errors import LockBusyError, LockError

WRITER = "writer"
MIGRATE = "migrate"
_PG_KEYS = {WRITER: 0x6D6D_7772, MIGRATE: 0x6D6D_6D67}
"""Advisory lock keys (``mmwr``, ``mmmg``); advisory locks are per database on the server."""

WaitFn = Callable[[str], None]
"""Told, once, why the caller is about to wait for the lock (a one-line message)."""


@contextmanager
def database_lock(
    engine: SqlEngine, name: str = WRITER, *, purpose: str = "ingest", wait: bool = True, on_wait: WaitFn | None = None
) -> Iterator[None]:
    """Hold the database's ``name`` lock for the block (see the module docstring)."""
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with _file_lock(Path(f"{database}.{name}.lock"), purpose, wait, on_wait):
            yield
    elif backend == "postgresql":
        with _pg_lock(engine, _PG_KEYS[name], purpose, wait, on_wait):
            yield
    else:  # other databases: no lock support; the generation checks still keep the index honest
        yield


def _holder_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "another ingest or reindex is running"
    since = datetime.fromtimestamp(float(info.get("since", 0))).isoformat(sep=" ", timespec="seconds")
    return f"another {info.get('purpose', 'ingest')} is running (pid {info.get('pid', '?')}, since {since})"


# -- SQLite: a file lock -----------------------------------------------------------------
@contextmanager
def _file_lock(path: Path, purpose: str, wait: bool, on_wait: WaitFn | None) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LockError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc
    try:
        if not _try_lock(fd):
            message = _holder_text(_read_holder(fd))
            if not wait:
                raise LockBusyError(f"{message}; try again when it is done")
            if on_wait is not None:
                on_wait(f"{message}; waiting for it to finish")
            _lock(fd)
        _write_holder(fd, purpose)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data.decode()) if data else None
    except (OSError, ValueError):
        return None


def _write_holder(fd: int, purpose: str) -> None:
    data = json.dumps({"pid": os.getpid(), "since": time.time(), "purpose": purpose}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only (mypy checks the branch it runs on)
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _lock(fd: int) -> None:
        while not _try_lock(fd):
            time.sleep(0.2)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


# -- PostgreSQL: a session advisory lock -------------------------------------------------
@contextmanager
def _pg_lock(engine: SqlEngine, key: int, purpose: str, wait: bool, on_wait: WaitFn | None) -> Iterator[None]:
    """The holder's own purpose is not recorded on the server: the message names the backend holding the lock."""
    purpose = "ingest or reindex" if key == _PG_KEYS[WRITER] else "schema upgrade"
    with engine.connect() as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        if not got:
            holder = connection.execute(
                text(
                    "SELECT a.pid, extract(epoch from a.backend_start) FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND l.objid = :key"
                ),
                {"key": key},
            ).first()
            who = {"pid": f"server backend {holder[0]}", "since": holder[1], "purpose": purpose} if holder else None
            message = _holder_text(who)
            if not wait:
                raise LockBusyError(f"{message}; try again when it is done")
            if on_wait is not None:
                on_wait(f"{message}; waiting for it to finish")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
