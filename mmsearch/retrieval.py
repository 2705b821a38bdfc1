"""Dense retrieval over the image, caption and transcript indexes, turned into hits."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmsearch.index.base import VectorIndex
from mmsearch.search import Hit
from mmsearch.store.repository import IMAGE, MetadataStore, StoredFile, StoredText
from mmsearch.textitems import CAPTION, TRANSCRIPT

IndexFor = Callable[[str], VectorIndex]
OVERFETCH = 4
"""Per-asset searches fetch this many times k items, and more until k assets are found or none are left."""


class DenseRetriever:
    """Answers vector queries of each search kind from the collection indexes."""

    def __init__(self, store: MetadataStore, index_for: IndexFor) -> None:
        self.store = store
        self.index_for = index_for

    def search(self, vectors: np.ndarray, k: int, kind: str) -> list[list[Hit]]:
        """Top-``k`` hits per query row for ``kind`` (see :data:`mmsearch.search.SEARCH_KINDS`)."""
        if kind in (IMAGE, CAPTION, TRANSCRIPT):
            per_query = self._items(kind, vectors, k)
        elif kind == "audio":
            per_query = self._best_per_asset((TRANSCRIPT,), vectors, k)
        elif kind == "any":
            per_query = self._best_per_asset((IMAGE, CAPTION, TRANSCRIPT), vectors, k)
        else:
            raise ValueError(f"unknown search kind {kind!r}")
        return self._hits(per_query)

    def _items(self, collection: str, vectors: np.ndarray, k: int) -> list[list[tuple[str, int, float]]]:
        index = self.index_for(collection)
        if len(index) == 0:
            return [[] for _ in range(len(vectors))]
        scores, ids = index.search(vectors, k)
        return [
            [(collection, int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]

    def _best_per_asset(
        self, collections: tuple[str, ...], vectors: np.ndarray, k: int
    ) -> list[list[tuple[str, int, float]]]:
        results = []
        for vector in vectors:
            best: dict[int, tuple[float, str, int]] = {}
            for collection in collections:
                for item_id, file_id, score in self._fetch_assets(collection, vector[None, :], k):
                    if file_id not in best or score > best[file_id][0]:
                        best[file_id] = (score, collection, item_id)
            ranked = sorted(best.items(), key=lambda entry: (-entry[1][0], entry[0]))[:k]
            results.append([(collection, item_id, score) for _, (score, collection, item_id) in ranked])
        return results

    def _fetch_assets(self, collection: str, vector: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """(item id, file id, score) of the best item of each of at least ``k`` assets, when there are that many."""
        index = self.index_for(collection)
        total = len(index)
        if total == 0:
            return []
        fetch = k if collection == IMAGE else min(total, k * OVERFETCH)
        while True:
            scores, ids = index.search(vector, fetch)
            found = [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
            if collection == IMAGE:
                return [(item_id, item_id, score) for item_id, score in found]
            texts = self.store.get_texts(item_id for item_id, _ in found)
            per_file: dict[int, tuple[int, float]] = {}
            for item_id, score in found:
                text = texts.get(item_id)
                if text is not None and text.file_id not in per_file:
                    per_file[text.file_id] = (item_id, score)
            if len(per_file) >= k or fetch >= total:
                return [(item_id, file_id, score) for file_id, (item_id, score) in per_file.items()]
            fetch = min(total, fetch * OVERFETCH)

    def _hits(self, per_query: list[list[tuple[str, int, float]]]) -> list[list[Hit]]:
        text_ids = {item_id for row in per_query for collection, item_id, _ in row if collection != IMAGE}
        texts = self.store.get_texts(text_ids)
        file_ids = {item_id for row in per_query for collection, item_id, _ in row if collection == IMAGE}
        file_ids.update(text.file_id for text in texts.values())
        files = self.store.get_files(file_ids)
        results = []
        for row in per_query:
            hits: list[Hit] = []
            for collection, item_id, score in row:
                hit = _hit(len(hits) + 1, collection, item_id, score, files, texts)
                if hit is not None:
                    hits.append(hit)
            results.append(hits)
        return results


def _hit(
    rank: int, collection: str, item_id: int, score: float, files: dict[int, StoredFile], texts: dict[int, StoredText]
) -> Hit | None:
    if collection == IMAGE:
        file = files.get(item_id)
        return None if file is None else Hit(rank, score, file.id, file.path, file.kind, file.width, file.height)
    text = texts.get(item_id)
    file = files.get(text.file_id) if text is not None else None
    if text is None or file is None:  # removed by another process since the index was read
        return None
    return Hit(
        rank,
        score,
        file.id,
        file.path,
        file.kind,
        file.width,
        file.height,
        collection,
        text.text,
        text.start,
        text.end,
        text.id,
    )
