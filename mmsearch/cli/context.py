"""What every command shares: the engine and searcher of the global options, library errors as one line and an
exit code, the -v count, the resolved settings."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from mmsearch.errors import MmsearchError

if TYPE_CHECKING:
    from mmsearch.engine import Engine
    from mmsearch.searcher import Searcher

PARTIAL_FAILURE = 3
"""Exit code of a run that completed with per-item failures (files that failed to ingest, bad --from-file lines,
drift found by check)."""

VERBOSITY = "mmsearch.verbosity"
"""Key of the global -v count in ``ctx.meta`` (shared by every command's context): -1 with -q, else 0, 1, 2..."""


def verbosity(ctx: click.Context) -> int:
    """How much the global options asked to be told: -1 (-q), 0 (default), 1 (-v), 2 (-vv) and more."""
    return int(ctx.meta.get(VERBOSITY, 0))


@contextmanager
def open_engine(ctx: click.Context, create: bool = True) -> Iterator[Engine]:
    """Open the engine from the global options; library errors become clean messages. Commands that only read
    pass ``create=False``: no database is created as a side effect (a missing one is "nothing indexed")."""
    with library_errors():
        from mmsearch.engine import Engine

        with Engine.open(**ctx.obj, create=create) as engine:
            collect_again()
            yield engine


@contextmanager
def open_searcher(ctx: click.Context, service: bool, text: str | None = None) -> Iterator[Searcher]:
    """The searcher of the global options: the home's running query service, else the engine
    (:func:`mmsearch.searcher.open_searcher` picks; it only reads: no database is created; ``text``, the query
    about to be searched, may be encoded meanwhile); library errors become clean messages."""
    with library_errors():
        from mmsearch.searcher import open_searcher

        with open_searcher(**ctx.obj, service=service, create=False, text=text) as searcher:
            collect_again()
            yield searcher


@contextmanager
def library_errors() -> Iterator[None]:
    """Library errors become ``Error: ...`` and exit code 1. Pillow's bomb warnings are dropped:
    mmsearch applies its own pixel limit and reports each such file itself."""
    with warnings.catch_warnings(), clean_errors():
        # Pillow's DecompressionBombWarning, by its message: importing Pillow here would slow served queries
        warnings.filterwarnings("ignore", r"Image size \(\d+ pixels\) exceeds limit", RuntimeWarning)
        yield


@contextmanager
def clean_errors() -> Iterator[None]:
    """Library errors become ``Error: ...`` and their exit code (2 for bad queries, else 1)."""
    try:
        yield
    except MmsearchError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = exc.exit_code  # type: ignore[misc]  # click types it a ClassVar; main() reads the instance's
        raise error from exc


def settings_of(ctx: click.Context) -> Any:
    """The resolved settings of the global options (config files and environment included)."""
    from mmsearch.config import resolve_settings

    with clean_errors():
        return resolve_settings(**ctx.obj)


def say_waiting(message: str) -> None:
    click.echo(message, err=True)


def collect_again() -> None:
    """After start-up (imports done, engine open): what exists now stays (frozen, never scanned again), and
    the collector runs again for what commands create, so long ones (ingest) keep bounded memory."""
    if not gc.isenabled():  # disabled only by main()
        gc.freeze()
        gc.enable()
