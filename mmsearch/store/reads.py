"""The search path's small SELECTs, run on the driver's own connection.

A search reads a handful of rows several times per query (cached query vectors, index generations, keyword
matches, the files and texts of the top hits). Through SQLAlchemy each such statement costs ~100-150 µs of
compilation, parameter expansion and result wrapping around ~10-20 µs of database work (measured on SQLite);
here it costs the pool checkout and the driver call. Statements are written with ``?`` placeholders; a list
parameter expands its ``?`` into one placeholder per element, and drivers of the ``format``/``pyformat``
style (psycopg) get ``%s`` instead (so the SQL must hold no other ``?`` and no ``%``). Everything else
(writes, ingest, maintenance) goes through SQLAlchemy. The stdlib store (``mmsearch.store.sqlite_store``) runs the
same statements on its own sqlite3 connections, rendered by :func:`render`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

Param = Any
"""A scalar, or a list/tuple that fills an ``IN (?)`` with one placeholder per element."""


class DriverReads:
    """Read-only statements on a pooled DB-API connection of ``engine``; one checkout per call."""

    def __init__(self, engine: SqlEngine) -> None:
        self._engine = engine
        self.dialect = engine.dialect.name
        self._percent = engine.dialect.paramstyle in ("format", "pyformat")

    def rows(self, sql: str, params: Sequence[Param] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``sql`` (``?`` placeholders) with ``params``; list params expand ``IN (?)``."""
        statement, flat = expanded(sql, params, self._percent)
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(statement, flat)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool, which ends the (read-only) transaction


def expanded(sql: str, params: Sequence[Param], percent: bool = False) -> tuple[str, list[Any]]:
    """The statement to run for ``sql`` with ``params`` (see :func:`render`) and its flat parameters."""
    lengths = tuple(len(p) if isinstance(p, (list, tuple)) else -1 for p in params)
    flat: list[Any] = []
    for param in params:
        if isinstance(param, (list, tuple)):
            flat.extend(param)
        else:
            flat.append(param)
    return render(sql, lengths, percent), flat


@functools.lru_cache(maxsize=512)
def render(sql: str, lengths: tuple[int, ...], percent: bool) -> str:
    """``sql`` with each list parameter's ``?`` expanded (an empty list becomes ``NULL``: matches nothing)."""
    pieces = sql.split("?")
    if len(pieces) - 1 != len(lengths):
        raise ValueError(f"{len(pieces) - 1} placeholders for {len(lengths)} parameters in {sql!r}")
    mark = "%s" if percent else "?"
    out = [pieces[0]]
    for length, piece in zip(lengths, pieces[1:], strict=True):
        if length < 0:
            out.append(mark)
        else:
            out.append(", ".join([mark] * length) if length else "NULL")
        out.append(piece)
    return "".join(out)
