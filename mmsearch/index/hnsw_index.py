"""Approximate inner-product index (FAISS ``IndexHNSWFlat``) that stays updatable in place.

An HNSW graph cannot delete nodes, so this index keeps its own id map: graph
position -> database id (``-1`` marks a tombstone) and id -> position. Removing an
id tombstones its node; re-adding an id tombstones the old node and inserts the new
vector. Searches over-fetch in proportion to the tombstones and drop them; when
tombstones pass ``COMPACT_FRACTION`` of the nodes, ``needs_compaction()`` says so and
``compact()`` rebuilds the graph from the live vectors.

The stored vectors are exact (``Flat`` storage), so the scores returned are exact
inner products and each row is sorted best first; only *which* vectors are found is
approximate (recall, tuned by ``ef_search``). The parameters below were chosen with
``bench/index.py`` (see bench/RESULTS.md): at 1M clustered 512-d vectors they give
recall@10 of about 0.97 at well under 1 ms per single query on one core.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mmsearch.errors import IndexCorruptError
from mmsearch.identity import ModelIdentity
from mmsearch.index.base import IndexBase
from mmsearch.index.faiss_index import (
    VECTOR_CHUNK,
    check_vectors,
    index_header,
    open_index_file,
    read_exact,
    search_threads,
    write_faiss,
    write_index_file,
)
from mmsearch.index.mapped import Mapping, map_faiss, owned_copy

HNSW_KIND = "faiss-hnsw-ip"
HNSW_M = 32
"""Graph degree (links per node, 2*M on the bottom layer): memory is about ``dim*4 + M*8*1.07`` bytes per vector."""
HNSW_EF_CONSTRUCTION = 80
"""Candidate list while inserting: build time grows about linearly with it; 80 buys recall over faiss's 40."""
HNSW_EF_SEARCH = 256
"""Candidate list while searching (raised to the fetch size when that is larger): the recall/latency knob.
At 1M clustered 512-d vectors (bench/index.py, 2-core Xeon): efSearch 64 gives recall@10 0.865, 128 gives
0.94-0.95, 256 gives 0.969 at 1.3 ms p50; 256 keeps the 0.95 target with a margin."""
COMPACT_FRACTION = 0.2
"""``needs_compaction()`` once tombstones exceed this fraction of the graph's nodes."""
_OVERFETCH_MARGIN = 8
_SCAN_LOOKUPS = 256
"""``vectors()`` of up to this many ids scans the id map (~2 ms at 1M) rather than build the id -> position map."""
_EMPTY_SCORE = np.float32(-np.finfo(np.float32).max)  # what FAISS reports for an empty slot


class HnswIndex(IndexBase):
    """An HNSW inner-product index keyed by database ids, with tombstones for removals."""

    kind = HNSW_KIND
    exact_scores = True  # HNSWFlat keeps full vectors: the candidates are approximate, their scores exact

    def __init__(
        self,
        identity: ModelIdentity,
        m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_search: int = HNSW_EF_SEARCH,
    ) -> None:
        import faiss

        self.identity = identity
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)
        self._faiss: Any = faiss  # Any: faiss's own stubs (__init__.pyi) lack much of its SWIG API
        self._index = self._new_graph()
        self._labels = np.empty(0, dtype=np.int64)  # graph position -> id, -1 for a tombstone
        self._position_map: dict[int, int] | None = {}  # live id -> graph position; None: not built yet
        self._live = 0  # live ids while the map is not built
        self._mapping: Mapping | None = None  # set when the graph is read in place from the file

    def _new_graph(self) -> Any:
        graph = self._faiss.IndexHNSWFlat(self.identity.dim, self.m, self._faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        graph.hnsw.efSearch = self.ef_search
        return graph

    @property
    def _positions(self) -> dict[int, int]:
        """Live id -> graph position, built on first need (a loaded index that is only searched never needs it:
        1M entries cost a few hundred ms)."""
        if self._position_map is None:
            live = np.flatnonzero(self._labels >= 0)
            self._position_map = dict(zip(self._labels[live].tolist(), live.tolist(), strict=True))
            if len(self._position_map) != len(live):
                raise IndexCorruptError("an id appears twice in the HNSW id map")
        return self._position_map

    @_positions.setter
    def _positions(self, positions: dict[int, int]) -> None:
        self._position_map = positions

    def __len__(self) -> int:
        return len(self._position_map) if self._position_map is not None else self._live

    @property
    def tombstones(self) -> int:
        """Graph nodes whose id was removed or replaced; dropped by :meth:`compact`. Counted without the id ->
        position map (``len``), so a loaded index that is only searched never builds it."""
        return int(self._index.ntotal) - len(self)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert vectors; an id already present (or repeated in ``ids``: the last wins) is replaced."""
        vectors = check_vectors(self.identity, vectors, "vectors")
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if ids.size == 0:
            return
        _, last_reversed = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - last_reversed)
        if len(keep) < len(ids):
            ids, vectors = ids[keep], vectors[keep]
        self.remove(ids)
        if self._mapping is not None:  # a graph read in place must become an ordinary copy before it changes
            self._index, self._mapping = owned_copy(self._index), None
        start = int(self._index.ntotal)
        self._index.add(vectors)
        self._labels = np.concatenate([self._labels, ids])
        self._positions.update(zip(ids.tolist(), range(start, start + len(ids)), strict=True))

    def remove(self, ids: np.ndarray) -> int:
        """Tombstone ``ids``; returns how many were present."""
        removed = 0
        for key in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            position = self._positions.pop(key, None)
            if position is not None:
                self._labels[position] = -1
                removed += 1
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (exact scores, ids) per query row, best first; missing slots have id -1."""
        queries = check_vectors(self.identity, queries, "query vectors")
        live, nodes = len(self), int(self._index.ntotal)
        k = max(1, min(k, live)) if live else 1
        scores = np.full((len(queries), k), _EMPTY_SCORE, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        if live == 0 or len(queries) == 0:
            return scores, found
        fetch = k if nodes == live else min(nodes, math.ceil(k * nodes / live) + _OVERFETCH_MARGIN)
        todo = np.arange(len(queries))
        while todo.size:
            params = self._faiss.SearchParametersHNSW(efSearch=max(self.ef_search, fetch))
            with search_threads(self._faiss, len(todo)):
                raw_scores, positions = self._index.search(queries[todo], fetch, params=params)
            got = self._keep_live(raw_scores, positions, k)
            scores[todo], found[todo] = got
            short = (got[1] < 0).any(axis=1)
            if fetch >= nodes or not short.any():
                break
            todo, fetch = todo[short], min(nodes, fetch * 2)
        return scores, found

    def _keep_live(self, raw_scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` live hits of each row, re-sorted by score (stable), as (scores, ids)."""
        labels = np.where(positions >= 0, self._labels[np.maximum(positions, 0)], -1)
        raw_scores = np.where(labels >= 0, raw_scores, _EMPTY_SCORE)
        order = np.argsort(-raw_scores.astype(np.float64), axis=1, kind="stable")[:, :k]
        return np.take_along_axis(raw_scores, order, axis=1), np.take_along_axis(labels, order, axis=1)

    def needs_compaction(self, fraction: float = COMPACT_FRACTION) -> bool:
        """True once tombstones exceed ``fraction`` of the graph's nodes."""
        nodes = int(self._index.ntotal)
        return nodes > 0 and self.tombstones > fraction * nodes

    def compact(self) -> int:
        """Rebuild the graph from the live vectors (in their insertion order); returns the tombstones dropped."""
        dropped = self.tombstones
        if dropped == 0:
            return 0
        live = np.flatnonzero(self._labels >= 0)
        graph = self._new_graph()
        for start in range(0, len(live), VECTOR_CHUNK):
            graph.add(self._index.reconstruct_batch(live[start : start + VECTOR_CHUNK]))
        self._index, self._labels = graph, self._labels[live]
        self._positions = dict(zip(self._labels.tolist(), range(len(live)), strict=True))
        return dropped

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored (exact, HNSWFlat keeps full vectors) vector of each given live id."""
        wanted = [int(key) for key in ids]
        if self._position_map is None and len(wanted) <= _SCAN_LOOKUPS:  # a scan of the id map beats building it
            at = np.flatnonzero(np.isin(self._labels, np.array(wanted, dtype=np.int64)))
            found = list(zip(self._labels[at].tolist(), at.tolist(), strict=True))
        else:
            found = [(key, self._positions[key]) for key in wanted if key in self._positions]
        if not found:
            return {}
        rows = self._index.reconstruct_batch(np.array([position for _, position in found], dtype=np.int64))
        return {key: row for (key, _), row in zip(found, rows, strict=True)}

    def ids(self) -> np.ndarray:
        """Every live id, in insertion order."""
        return self._labels[self._labels >= 0].copy()

    def iter_vectors(self, chunk: int = VECTOR_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every live (ids, vectors) pair, in chunks: what compaction and converting to another kind re-add."""
        live = np.flatnonzero(self._labels >= 0)
        for start in range(0, len(live), chunk):
            positions = live[start : start + chunk]
            yield self._labels[positions], self._index.reconstruct_batch(positions)

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """Write atomically; the payload is the position -> id map (int64) then the serialised graph."""
        params = {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "nodes": int(self._index.ntotal),
            "tombstones": self.tombstones,
        }
        header = index_header(self.kind, self.identity, len(self), {**extra, "hnsw": params})

        def payload(handle: BinaryIO) -> None:
            handle.write(self._labels.astype("<i8", copy=False).data)
            write_faiss(self._index, handle)

        write_index_file(path, header, payload)

    @classmethod
    def load(cls, path: Path) -> tuple[HnswIndex, dict[str, Any]]:
        """Read an index written by :meth:`save`, its graph left in place in the file (``mmsearch.index.mapped``);
        returns it with its header."""
        with open_index_file(path) as (header, handle):
            index, nodes = cls._from_header(header, path)
            labels = np.frombuffer(read_exact(handle, nodes * 8, path), dtype="<i8").astype(np.int64)
            offset = handle.tell()
        graph, mapping = map_faiss(path, offset)
        if int(graph.ntotal) != nodes or graph.d != index.identity.dim or not hasattr(graph, "hnsw"):
            raise IndexCorruptError(f"{path}: the graph does not match its header")
        live = int(np.count_nonzero(labels >= 0))
        if live != int(header.get("count", live)):
            raise IndexCorruptError(f"{path}: {live} live ids, the header says {header.get('count')}")
        graph.hnsw.efSearch = index.ef_search
        index._index, index._labels, index._mapping = graph, labels, mapping
        index._position_map, index._live = None, live
        return index, header

    @classmethod
    def _from_header(cls, header: dict[str, Any], path: Path) -> tuple[HnswIndex, int]:
        """An empty index with the saved parameters, and the number of graph nodes the file holds."""
        try:
            params = header["hnsw"]
            nodes = int(params["nodes"])
            index = cls(
                ModelIdentity.from_dict(header["identity"]),
                int(params["m"]),
                int(params["ef_construction"]),
                int(params["ef_search"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{path} has a damaged HNSW header: {exc}") from exc
        if nodes < 0:
            raise IndexCorruptError(f"{path} has a damaged HNSW header: {nodes} nodes")
        return index, nodes
