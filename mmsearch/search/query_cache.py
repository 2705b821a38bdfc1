"""Text-query vectors cached in the database, written behind the queries so none of them waits on a commit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from mmsearch.store.sql_reads import QueryStore

FLUSH_EVERY = 64
log = logging.getLogger(__name__)


def one_connection(store: QueryStore) -> bool:
    """True when every thread shares the store's one connection (an in-memory SQLite database): work on the
    database then stays in the caller's thread."""
    return store.one_connection


class QueryVectorCache:
    """Reads go to the entries in memory, then the database; writes are buffered and flushed in batches.

    A full buffer is written by a background thread, so the query that fills it does not pay for the commit
    (2 ms, and 15+ ms when SQLite checkpoints its log); one write at a time, the next buffer waits for the next
    flush. An in-memory database (one shared connection) is written in the caller's thread instead. Call
    :meth:`close` (``Engine.close`` does) to persist what is pending; entries lost in a crash only cost a
    re-encode later, and a failed write is logged and dropped for the same reason.
    """

    def __init__(self, store: QueryStore, model_id: int, flush_every: int = FLUSH_EVERY) -> None:
        self.store = store
        self.model_id = model_id
        self.flush_every = flush_every
        self._pending: dict[str, np.ndarray] = {}
        self._writing: dict[str, np.ndarray] = {}
        self._write: Future[None] | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._background = not one_connection(store)

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Known vectors by text."""
        found: dict[str, np.ndarray] = {}
        for text in texts:
            vector = self._memory(text)
            if vector is not None:
                found[text] = vector
        rest = [text for text in texts if text not in found]
        if rest:
            found.update(self.store.cached_query_vectors(self.model_id, rest))
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Remember vectors; written to the database every ``flush_every`` entries and on :meth:`flush`."""
        self._pending.update(vectors)
        if len(self._pending) < self.flush_every:
            return
        if not self._background:
            self.flush()
        elif self._write is None or self._write.done():
            self._start_write()

    def flush(self) -> None:
        """Write everything pending now, after any write in progress."""
        self._wait()
        if self._pending:
            pending, self._pending = self._pending, {}
            self._store(pending)

    def close(self) -> None:
        """Flush, and stop the background writer."""
        self.flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _memory(self, text: str) -> np.ndarray | None:
        vector = self._pending.get(text)
        return vector if vector is not None else self._writing.get(text)

    def _start_write(self) -> None:
        self._wait()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsearch-query-cache")
        self._writing, self._pending = self._pending, {}
        self._write = self._writer.submit(self._store, self._writing)

    def _wait(self) -> None:
        if self._write is not None:
            self._write.result()  # _store never raises
            self._write = None

    def _store(self, vectors: dict[str, np.ndarray]) -> None:
        try:
            self.store.cache_query_vectors(self.model_id, vectors)
        except Exception as exc:  # a cache: losing entries costs a re-encode, never a query
            log.warning("could not write %d cached query vectors: %s", len(vectors), exc)
