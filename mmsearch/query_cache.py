"""Text-query vectors cached in the database, written behind the query so it never waits on a commit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmsearch.store.repository import MetadataStore

FLUSH_EVERY = 64


class QueryVectorCache:
    """Reads go to pending entries, then the database; writes are buffered and flushed in batches.

    Call :meth:`flush` (``Engine.close`` does) to persist what is pending; losing
    pending entries in a crash only costs a re-encode later.
    """

    def __init__(self, store: MetadataStore, model_id: int, flush_every: int = FLUSH_EVERY) -> None:
        self.store = store
        self.model_id = model_id
        self.flush_every = flush_every
        self._pending: dict[str, np.ndarray] = {}

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Known vectors by text."""
        found = {text: self._pending[text] for text in texts if text in self._pending}
        rest = [text for text in texts if text not in found]
        if rest:
            found.update(self.store.cached_query_vectors(self.model_id, rest))
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Remember vectors; written to the database every ``flush_every`` entries and on flush."""
        self._pending.update(vectors)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            self.store.cache_query_vectors(self.model_id, pending)
