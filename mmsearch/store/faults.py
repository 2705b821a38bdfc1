"""Database and disk faults as typed errors: a damaged or foreign database file, a full disk. These are facts
about the user's files, not bugs, so the CLI shows one line (never a traceback) and what to do.

A failed write never leaves a half-committed batch behind (every batch is one transaction), so after a full
disk the database is as it was before the failed batch.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from mmsearch.errors import DatabaseError, DiskFullError

_FULL = ("database or disk is full", "no space left on device")
_DAMAGED = ("file is not a database", "database disk image is malformed", "malformed database schema")


def _shown(url: str) -> str:
    from sqlalchemy import exc as sa_exc  # an error is being shown: the import is no cost worth saving
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        return url
    return parsed.database or "" if parsed.get_backend_name() == "sqlite" else parsed.render_as_string()


def _driver_error(error: BaseException) -> BaseException | None:
    """The driver's error inside a SQLAlchemy ``DBAPIError`` (SQLAlchemy not imported: there is none)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return error.orig if sa_exc is not None and isinstance(error, sa_exc.DBAPIError) else None


def translated(error: BaseException, url: str) -> DatabaseError | None:
    """The typed error for ``error`` (a driver, SQLAlchemy or OS error), or None when it is no database fault."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return DiskFullError(f"the disk is full ({error.strerror}): free some space and run the command again")
    cause = _driver_error(error)
    if cause is None and not isinstance(error, (sqlite3.DatabaseError, RuntimeError)):
        return None
    cause = cause if cause is not None else error
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    lowered = text.lower()
    if any(marker in lowered for marker in _FULL):
        return DiskFullError(
            f"the disk holding the database {_shown(url)} is full ({text}); nothing of the failed step was kept: "
            "free some space and run the command again"
        )
    if any(marker in lowered for marker in _DAMAGED):
        return DatabaseError(
            f"the database {_shown(url)} is damaged or is not an mmsearch database ({text}); move it away (or "
            "restore a backup) and ingest again"
        )
    return None


@contextmanager
def database_faults(url: str) -> Iterator[None]:
    """Raise database and disk faults inside as :class:`DatabaseError` (others pass unchanged)."""
    try:
        yield
    except Exception as error:  # translated() tells the database faults (SQLAlchemy's, the drivers', the disk's)
        typed = translated(error, url)
        if typed is None:
            raise
        raise typed from error


class _HasDatabase(Protocol):
    @property
    def database_url(self) -> str: ...


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=_HasDatabase)


def faults_as_errors(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Decorate a method of an object with ``database_url``: its database faults become typed errors."""

    @wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        with database_faults(self.database_url):
            return method(self, *args, **kwargs)

    return wrapper


__all__ = ["database_faults", "faults_as_errors", "translated"]
