"""Keeps the on-disk vector index in step with the database, rebuilding it when stale."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import IndexCorruptError
from mmsearch.index import DEFAULT_INDEX_KIND, VectorIndex, create_index, load_index
from mmsearch.store.repository import IMAGE, MetadataStore

INDEX_SUFFIX = ".mmidx"


def index_path(index_dir: Path, database_url: str, identity: ModelIdentity, collection: str = IMAGE) -> Path:
    """One file per (database, model, collection): several databases may share an index folder."""
    db_key = hashlib.sha256(database_url.encode()).hexdigest()[:8]
    suffix = "" if collection == IMAGE else f"-{collection}"
    return index_dir / f"index-{db_key}-{identity.fingerprint}{suffix}{INDEX_SUFFIX}"


class IndexCache:
    """The vector index of one collection (image, caption or transcript vectors) of one model.

    Loaded on first use and saved after changes. ``generation`` is the database
    generation of the collection the in-memory index reflects; a saved index whose
    generation differs from the database's is rebuilt.
    """

    def __init__(
        self,
        store: MetadataStore,
        model_id: int,
        identity: ModelIdentity,
        path: Path,
        kind: str = DEFAULT_INDEX_KIND,
        collection: str = IMAGE,
    ) -> None:
        self.store = store
        self.model_id = model_id
        self.identity = identity
        self.path = path
        self.kind = kind
        self.collection = collection
        self._index: VectorIndex | None = None
        self.generation = -1

    def get(self) -> VectorIndex:
        """The index, loaded from disk or rebuilt from the database if missing or stale."""
        if self._index is None:
            loaded = self._load_fresh()  # an empty index is falsy: test for None, not truth
            self._index = loaded if loaded is not None else self.rebuild()
        return self._index

    def current(self) -> VectorIndex:
        """The index as of the database's latest generation, reloaded if another process changed it."""
        if self._index is not None and self.store.generation(self.collection) != self.generation:
            self._index = None
        return self.get()

    def _load_fresh(self) -> VectorIndex | None:
        if not self.path.is_file():
            return None
        try:
            index, header = load_index(self.path, self.kind)
        except (IndexCorruptError, OSError, KeyError, ValueError):
            return None
        if header.get("fingerprint") != self.identity.fingerprint:
            return None
        if header.get("generation") != self.store.generation(self.collection):
            return None
        self.generation = int(header["generation"])
        return index

    def rebuild(self) -> VectorIndex:
        """Build the index from the vectors stored in the database and save it."""
        generation = self.store.generation(self.collection)
        index = create_index(self.identity, self.kind)
        for ids, vectors in self.store.iter_vectors(self.model_id, self.collection):
            index.add(ids, vectors)
        self._index, self.generation = index, generation
        self.save()
        return index

    def apply(
        self,
        generation: int,
        add_ids: np.ndarray | None = None,
        add_vectors: np.ndarray | None = None,
        remove_ids: np.ndarray | None = None,
    ) -> None:
        """Mirror a committed database change; ``generation`` is the database's after it."""
        index = self.get()
        if remove_ids is not None and len(remove_ids):
            index.remove(np.asarray(remove_ids, dtype=np.int64))
        if add_ids is not None and len(add_ids):
            index.add(np.asarray(add_ids, dtype=np.int64), add_vectors)
        self.generation = generation

    def save(self) -> None:
        """Write the index atomically, stamped with the generation it reflects."""
        if self._index is not None:
            extra = {"generation": self.generation, "model_id": self.model_id, "collection": self.collection}
            self._index.save(self.path, extra)
