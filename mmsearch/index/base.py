"""The vector index protocol: a rebuildable cache of the vectors in the database."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmsearch.identity import ModelIdentity


class VectorIndex(Protocol):
    """Maps int64 ids to unit vectors and answers inner-product top-k queries."""

    identity: ModelIdentity
    kind: str
    exact_scores: bool
    """True when :meth:`search` returns exact inner products (full vectors stored), so what it found needs
    no re-scoring; an index that compresses vectors returns approximate scores and sets it False."""

    @property
    def tombstones(self) -> int:
        """Removed entries still taking room (0 where removal frees it at once; see :class:`IndexBase`)."""
        ...

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vector of each given id that is in the index (what exact re-scoring reads)."""
        ...

    def save(self, path: Path, extra: dict[str, Any]) -> None: ...


class IndexBase:
    """The defaults of :class:`VectorIndex`'s optional capabilities; every index derives from it."""

    @property
    def tombstones(self) -> int:
        """Nothing left behind by removals."""
        return 0
