"""One interface for searching a home, two implementations, picked in one place (:func:`open_searcher`).

* :class:`~mmsearch.engine.Engine`: searches in this process (loads the database, the indexes and the text
  encoder);
* :class:`~mmsearch.service.client.RemoteSearcher`: asks the running query service of the same home and
  database (``mmsearch serve``), which has them loaded already; torch-free, numpy-free, no database.

Both have the same :meth:`Searcher.search` as :meth:`Engine.search`. Nothing heavy is imported here: the
engine only when the search is local.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

from mmsearch.kinds import IMAGE

if TYPE_CHECKING:
    from types import TracebackType

    from mmsearch.search.hits import Hits
    from mmsearch.textaside import TextAside


class Searcher(Protocol):
    """Searches one home; a context manager (``close`` releases what it holds)."""

    def search(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        k: int = 10,
        kind: str = IMAGE,
        **options: Any,
    ) -> Hits:
        """Top-``k`` hits, best first; see :meth:`mmsearch.engine.Engine.search` for the arguments."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Searcher: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None: ...


def open_searcher(
    home: str | os.PathLike[str] | None = None,
    *,
    service: bool = True,
    create: bool = True,
    text: str | None = None,
    **settings: Any,
) -> Searcher:
    """The searcher for ``home`` (``settings`` as for :meth:`Engine.open`): the running query service of this home
    and database where there is one and ``service`` is true, else the engine, opened in this process
    (``create=False``: a missing database is not created, as :meth:`Engine.open`).

    ``text``: the query text about to be searched, if known. Where the engine opens in this process, it is
    encoded speculatively from now on with the model this home's queries used last (``mmsearch.textaside``),
    beside the engine's imports. A service that stops answering is not an error: the remote searcher then opens
    the engine itself.
    """
    from mmsearch.config import resolve_settings

    resolved = resolve_settings(home, **settings)
    if service:
        from mmsearch.service.client import RemoteSearcher, find_service

        info = find_service(resolved.home, resolved.database_url)
        if info is not None:
            return RemoteSearcher(info, model=resolved.model, local=lambda: _open_engine(home, create, settings))
    from mmsearch.textaside import start

    aside = start(resolved.index_dir, text)
    try:
        return _open_engine(home, create, settings, aside)
    except BaseException:
        if aside is not None:
            aside.cancel()
        raise


def _open_engine(
    home: str | os.PathLike[str] | None, create: bool, settings: dict[str, Any], aside: TextAside | None = None
) -> Searcher:
    from mmsearch.engine import Engine

    return Engine.open(home, create=create, text_aside=aside, **settings)
