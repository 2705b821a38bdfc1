"""Which index kind a collection gets, by size, and keeping an index that kind as the collection changes.

Small collections use the exact flat index: a query scans every vector, which is
cheap while there are few. From ``DEFAULT_HNSW_THRESHOLD`` vectors on, the
approximate HNSW index answers in about a millisecond at recall@10 of about 0.97
instead of a scan that grows linearly (20 ms at 100k and 170 ms at 1M 512-d vectors
on one core of the reference machine); see the "Vector indexes" section of
bench/RESULTS.md.

Callers (``IndexCache``) use three functions:

* ``build_index(identity, chunks)`` to rebuild from the database: starts flat and
  turns into HNSW once, when the vectors seen pass the threshold;
* ``maintain(index)`` after each change: returns the index to keep from then on,
  converted to the kind the policy prefers (with hysteresis, so a collection
  hovering near the threshold does not flip back and forth) or compacted in place
  when its tombstones pass ``COMPACT_FRACTION``; the same object when nothing was due;
* ``choose_index_kind(count)`` when the size is known up front.

The threshold is the ``hnsw_threshold`` setting (``MMSEARCH_HNSW_THRESHOLD``, ``config.toml``); ``kind_for``
is the same rule on a saved index's header (kind and count), for ``status``, which loads no FAISS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import numpy as np

from mmsearch.config import DEFAULT_HNSW_THRESHOLD
from mmsearch.identity import ModelIdentity
from mmsearch.index.base import VectorIndex
from mmsearch.index.faiss_index import FLAT_KIND, FaissIndex
from mmsearch.index.hnsw_index import COMPACT_FRACTION, HNSW_KIND, HnswIndex

SHRINK_FRACTION = 0.5
"""An HNSW index goes back to flat only when the collection shrinks below this fraction of the threshold."""

MANAGED_KINDS = (FLAT_KIND, HNSW_KIND)


class CopyableIndex(VectorIndex, Protocol):
    """An index that can hand back every (ids, vectors) chunk it holds (flat and HNSW can)."""

    def iter_vectors(self, chunk: int = ...) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


__all__ = [
    "COMPACT_FRACTION",
    "DEFAULT_HNSW_THRESHOLD",
    "SHRINK_FRACTION",
    "build_index",
    "choose_index_kind",
    "convert",
    "kind_for",
    "maintain",
    "preferred_kind",
]


def choose_index_kind(count: int, threshold: int = DEFAULT_HNSW_THRESHOLD) -> str:
    """The kind for a collection of ``count`` vectors: exact flat below ``threshold``, HNSW from it on."""
    return HNSW_KIND if count >= threshold else FLAT_KIND


def kind_for(count: int, current: str | None, threshold: int = DEFAULT_HNSW_THRESHOLD) -> str:
    """The kind an index of ``current`` kind holding ``count`` vectors should be: ``choose_index_kind``, except
    that HNSW stays until the collection shrinks below ``SHRINK_FRACTION`` of the threshold (hysteresis)."""
    if current == HNSW_KIND and count >= SHRINK_FRACTION * threshold:
        return HNSW_KIND
    return choose_index_kind(count, threshold)


def preferred_kind(index: VectorIndex, threshold: int = DEFAULT_HNSW_THRESHOLD) -> str:
    """``kind_for`` ``index``'s size and kind."""
    return kind_for(len(index), index.kind, threshold)


def convert(index: CopyableIndex, kind: str) -> VectorIndex:
    """A new index of ``kind`` holding ``index``'s ids and vectors (copied out of it in chunks)."""
    from mmsearch.index import create_index

    converted = create_index(index.identity, kind)
    for ids, vectors in index.iter_vectors():
        converted.add(ids, vectors)
    return converted


def maintain(index: VectorIndex, threshold: int = DEFAULT_HNSW_THRESHOLD) -> VectorIndex:
    """The index to keep after a change: converted to the preferred kind, or compacted; else ``index`` itself.

    Kinds the policy does not manage (registered by someone else) are returned untouched.
    """
    if index.kind not in MANAGED_KINDS:
        return index
    kind = preferred_kind(index, threshold)
    if kind != index.kind:
        return convert(_copyable(index), kind)
    if isinstance(index, HnswIndex) and index.needs_compaction():
        index.compact()
    return index


def build_index(
    identity: ModelIdentity,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    threshold: int = DEFAULT_HNSW_THRESHOLD,
) -> VectorIndex:
    """An index of every (ids, vectors) chunk, flat while small and converted to HNSW once it reaches ``threshold``."""
    from mmsearch.index import create_index

    index = create_index(identity, FLAT_KIND)
    for ids, vectors in chunks:
        index.add(ids, vectors)
        if index.kind == FLAT_KIND and len(index) >= threshold:
            index = convert(_copyable(index), HNSW_KIND)
    return index


def _copyable(index: VectorIndex) -> CopyableIndex:
    """``index`` as the copyable index every managed kind is (flat and HNSW)."""
    if not isinstance(index, (FaissIndex, HnswIndex)):
        raise TypeError(f"a {index.kind} index cannot be copied into another kind")
    return index
