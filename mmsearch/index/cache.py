"""Keeps the on-disk vector index in step with the database, rebuilding it when stale."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsearch.config import DEFAULT_HNSW_THRESHOLD
from mmsearch.errors import IndexCorruptError
from mmsearch.identity import ModelIdentity
from mmsearch.index import VectorIndex, load_index
from mmsearch.index.faiss_index import read_header
from mmsearch.index.policy import build_index, maintain
from mmsearch.kinds import IMAGE
from mmsearch.store.records import stored_precision  # numpy only: no SQLAlchemy on the query path

if TYPE_CHECKING:
    from mmsearch.store.sql_reads import QueryStore

INDEX_SUFFIX = ".mmidx"
REBUILD_TRIES = 3
log = logging.getLogger(__name__)


def index_path(index_dir: Path, database_url: str, identity: ModelIdentity, collection: str = IMAGE) -> Path:
    """One file per (database, model, collection): several databases may share an index folder."""
    db_key = hashlib.sha256(database_url.encode()).hexdigest()[:8]
    suffix = "" if collection == IMAGE else f"-{collection}"
    return index_dir / f"index-{db_key}-{identity.fingerprint}{suffix}{INDEX_SUFFIX}"


class IndexCache:
    """The vector index of one collection (image, caption or transcript vectors) of one model.

    Loaded on first use and saved after changes. ``generation`` is the database
    generation of the collection the in-memory index reflects; a saved index whose
    generation differs from the database's is rebuilt. The index kind follows
    ``mmsearch.index.policy`` with ``hnsw_threshold``: exact flat while the collection
    is small, HNSW from the threshold on; a loaded file of the other kind (the threshold
    changed, or an index from before the policy) is converted once and saved.
    """

    def __init__(
        self,
        store: QueryStore,
        model_id: int,
        identity: ModelIdentity,
        path: Path,
        collection: str = IMAGE,
        hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
    ) -> None:
        self.store = store
        self.model_id = model_id
        self.identity = identity
        self.path = path
        self.collection = collection
        self.hnsw_threshold = hnsw_threshold
        self._index: VectorIndex | None = None
        self.generation = -1

    @property
    def kind(self) -> str | None:
        """The kind of the index in memory; None before it is loaded."""
        return self._index.kind if self._index is not None else None

    def get(self) -> VectorIndex:
        """The index, loaded from disk or rebuilt from the database if missing or stale."""
        if self._index is None:
            loaded = self._load_fresh()  # an empty index is falsy: test for None, not truth
            if loaded is None:
                return self.rebuild()
            self._index = loaded
            if self._maintain():
                self.save()
        return self._index

    def current(self, generation: int | None = None) -> VectorIndex:
        """The index as of the database's latest generation (``generation`` when the caller just read it),
        reloaded if another process changed it."""
        latest = self.store.generation(self.collection) if generation is None else generation
        if self._index is not None and latest != self.generation:
            self._index = None
        return self.get()

    def repair(self) -> bool:
        """Rebuild a saved file that is stale (an interrupted writer left it behind its database) or that claims
        the database's generation but holds another number of vectors (written by a version that could stamp a
        generation it did not reflect); True when it was rebuilt. A missing or unreadable file is left to be
        built on first use.

        Reads only the file's header and counts the rows (what every ingest can afford)."""
        from mmsearch.store.integrity import collection_size  # ingest's import, not a query's

        if not self.path.is_file():
            return False
        try:
            header = read_header(self.path)
        except IndexCorruptError:
            return False
        current = header.get("generation") == self.store.generation(self.collection)
        if current and header.get("count") == collection_size(self.store.full, self.model_id, self.collection):
            return False
        self._index = None
        self.rebuild()
        return True

    def _load_fresh(self) -> VectorIndex | None:
        """The saved index if it is this model's and current; None (said in the log) when it must be rebuilt."""
        if not self.path.is_file():
            return None
        try:
            index, header = load_index(self.path)
        except (IndexCorruptError, OSError, KeyError, ValueError) as exc:
            log.warning(
                "the %s index %s is unreadable (%s): rebuilding it from the database",
                self.collection,
                self.path.name,
                exc,
            )
            return None
        if header.get("fingerprint") != self.identity.fingerprint:
            log.warning(
                "the %s index %s was written for another model (%s, not %s): rebuilding it from the database",
                self.collection,
                self.path.name,
                header.get("fingerprint"),
                self.identity.fingerprint,
            )
            return None
        stamped, latest = header.get("generation"), self.store.generation(self.collection)
        if stamped != latest:  # usual while another process writes: its file follows its commits
            log.info(
                "the %s index is stamped generation %s, the database is at %s: rebuilding it from the database",
                self.collection,
                stamped,
                latest,
            )
            return None
        self.generation = int(latest)
        return index

    def rebuild(self) -> VectorIndex:
        """Build the index from the vectors stored in the database and save it.

        The generation is read before and after the vectors: if another process wrote in between, the build
        is done again (a few times), and otherwise stamped with the older generation, so that it is rebuilt
        again on next use rather than claimed current.
        """
        for _ in range(REBUILD_TRIES):
            generation = self.store.generation(self.collection)
            chunks = self.store.iter_vectors(self.model_id, self.collection)
            index = build_index(self.identity, chunks, self.hnsw_threshold)
            if self.store.generation(self.collection) == generation:
                break
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
        """Mirror a committed database change; ``generation`` is the database's after it.

        Changes are made in place; then the index is converted if the collection crossed the threshold,
        or compacted if removals left too many tombstones. Each write bumps the generation by one, so a
        ``generation`` past the next one means another process wrote in between: the index is rebuilt from
        the database (which holds both changes) instead of being stamped with a generation it does not
        reflect. (A change the index already holds, when it was loaded after the write, applies harmlessly.)
        Added vectors are taken at the database's precision (``stored_precision``), so the index holds what a
        rebuild from the database would: the same scores whichever way it was built.
        """
        index = self.get()
        if generation > self.generation + 1:
            self.rebuild()
            return
        if remove_ids is not None and len(remove_ids):
            index.remove(np.asarray(remove_ids, dtype=np.int64))
        if add_ids is not None and add_vectors is not None and len(add_ids):
            index.add(np.asarray(add_ids, dtype=np.int64), stored_precision(add_vectors))
        self._maintain()
        self.generation = generation

    def _maintain(self) -> bool:
        """Keep the index the kind the policy wants, compacted; True when it was converted or compacted."""
        index = self._index
        if index is None:
            return False
        tombstones = index.tombstones
        self._index = maintain(index, self.hnsw_threshold)
        return self._index is not index or index.tombstones != tombstones

    def save(self) -> None:
        """Write the index atomically, stamped with the generation it reflects."""
        if self._index is not None:
            extra = {"generation": self.generation, "model_id": self.model_id, "collection": self.collection}
            self._index.save(self.path, extra)
