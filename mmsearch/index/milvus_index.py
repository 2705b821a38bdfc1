"""Vectors in Milvus (``mmsearch[milvus]``): a server (``http://host:19530``) or Milvus Lite (a local ``.db`` file).

Chosen by the ``vector_url`` setting (``--vector-url``, ``MMSEARCH_VECTOR_URL``, ``config.toml``) instead of the
FAISS files. One Milvus collection per (database, model, item kind): primary key = the database id (file id for
images, text item id for captions and transcript segments), a float vector field, inner product; the index type
and its parameters are left to Milvus (``AUTOINDEX``). Adds, removals and re-adds are upserts and deletes in place.

The database stays the source of truth. Beside the vector collections, a small ``mmsearch_meta`` collection keeps
one row per vector collection: the model identity and fingerprint it was built for and the database generation it
reflects, written after every change is mirrored. A collection whose row is missing, names another model or is
behind the database is rebuilt from the stored vectors, as a FAISS file would be (``mmsearch reindex`` rebuilds
it on demand).

Searches take Milvus's candidates; their exact cosine is then computed from the vectors stored in the database
(``exact_scores`` is False, so hybrid search re-scores), so both backends rank by the same scores and differ only
in which candidates an approximate index finds.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.config import DEFAULT_HNSW_THRESHOLD
from mmsearch.errors import MissingDependencyError, MmsearchError
from mmsearch.hints import install_hint
from mmsearch.identity import ModelIdentity
from mmsearch.index.base import IndexBase
from mmsearch.index.cache import IndexCache
from mmsearch.index.faiss_index import check_vectors
from mmsearch.kinds import IMAGE
from mmsearch.store.sql_reads import QueryStore

MILVUS_KIND = "milvus"
META_COLLECTION = "mmsearch_meta"
_META_DIM = 2  # Milvus wants a vector field in every collection; the meta rows carry a dummy one
_MAX_TOP_K = 16_384  # Milvus's limit on one search's top k
_UPSERT_CHUNK = 2_048
_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()

VectorSource = Callable[[Iterable[int]], "dict[int, np.ndarray]"]
"""Database ids -> their stored vectors (what exact re-scoring reads)."""


class VectorStoreError(MmsearchError):
    """Milvus could not be reached or refused an operation."""


def milvus_client(url: str) -> Any:
    """One client per URL in this process (a Milvus Lite file is served by one embedded server)."""
    with _CLIENTS_LOCK:
        if url not in _CLIENTS:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise MissingDependencyError(f"vector_url needs pymilvus: {install_hint('milvus')} ({exc})") from exc
            if not url.startswith(("http://", "https://", "tcp://", "unix:")):
                Path(url).expanduser().parent.mkdir(parents=True, exist_ok=True)
            try:
                _CLIENTS[url] = MilvusClient(uri=url)
            except Exception as exc:  # pymilvus raises its own MilvusException, grpc errors, OSError
                raise VectorStoreError(f"cannot connect to Milvus at {url}: {exc}") from exc
        return _CLIENTS[url]


def close_clients() -> None:
    """Close every client this process opened (Milvus Lite stops its embedded server)."""
    with _CLIENTS_LOCK:
        for client in _CLIENTS.values():
            client.close()
        _CLIENTS.clear()


def collection_name(database_url: str, identity: ModelIdentity, collection: str) -> str:
    """``mmsearch_<database key>_<model fingerprint>_<kind>``: letters, digits and underscores, as Milvus wants."""
    db_key = hashlib.sha256(database_url.encode()).hexdigest()[:8]
    model_key = hashlib.sha256(identity.fingerprint.encode()).hexdigest()[:16]
    return f"mmsearch_{db_key}_{model_key}_{collection}"


class MilvusIndex(IndexBase):
    """A :class:`~mmsearch.index.base.VectorIndex` over one Milvus collection."""

    kind = MILVUS_KIND
    exact_scores = False  # candidates come from Milvus's index; their exact cosine from the database's vectors

    def __init__(self, client: Any, name: str, identity: ModelIdentity, stored_vectors: VectorSource) -> None:
        self.identity = identity
        self.name = name
        self._client = client
        self._stored_vectors = stored_vectors
        self._count: int | None = None

    def create(self) -> None:
        """(Re)create the collection, empty."""
        from pymilvus import DataType

        client = self._client
        if client.has_collection(self.name):
            client.drop_collection(self.name)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.identity.dim)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="IP")
        client.create_collection(self.name, schema=schema, index_params=params, consistency_level="Strong")
        self._count = 0

    def __len__(self) -> int:
        if self._count is None:
            rows = self._client.query(self.name, filter="", output_fields=["count(*)"])
            self._count = int(rows[0]["count(*)"]) if rows else 0
        return self._count

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = check_vectors(self.identity, vectors, "vectors")
        ids = np.asarray(ids, dtype=np.int64)
        for start in range(0, len(ids), _UPSERT_CHUNK):
            stop = start + _UPSERT_CHUNK
            rows = [
                {"id": int(key), "vector": vector.tolist()}
                for key, vector in zip(ids[start:stop], vectors[start:stop], strict=True)
            ]
            self._client.upsert(self.name, data=rows)
        self._count = None

    def remove(self, ids: np.ndarray) -> int:
        keys = [int(key) for key in np.asarray(ids, dtype=np.int64)]
        if not keys:
            return 0
        before = len(self)
        self._client.delete(self.name, ids=keys)
        self._count = None
        return before - len(self)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row, best first; missing slots have id -1 (as FAISS)."""
        queries = check_vectors(self.identity, queries, "query vectors")
        k = max(1, min(k, _MAX_TOP_K))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if len(self) == 0:
            return scores, ids
        results = self._client.search(
            self.name,
            data=queries.tolist(),
            limit=k,
            anns_field="vector",
            search_params={"metric_type": "IP"},
            output_fields=["id"],
        )
        for row, hits in enumerate(results):
            for slot, hit in enumerate(hits):
                ids[row, slot], scores[row, slot] = int(hit["id"]), float(hit["distance"])
        return scores, ids

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The exact vectors stored in the database for the given ids."""
        return self._stored_vectors([int(key) for key in ids])

    def iter_vectors(self, chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) pair the collection holds, read back from Milvus in chunks."""
        iterator = self._client.query_iterator(self.name, batch_size=chunk, filter="", output_fields=["id", "vector"])
        try:
            while rows := iterator.next():
                yield (
                    np.array([row["id"] for row in rows], dtype=np.int64),
                    np.array([row["vector"] for row in rows], dtype=np.float32),
                )
        finally:
            iterator.close()

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """Nothing to write: Milvus persists every change itself (the generation stamp is the cache's job)."""


class MilvusIndexCache(IndexCache):
    """:class:`IndexCache` for a Milvus collection: rebuilt from the database when missing, of another model or
    behind the database's generation; changes mirrored in place, then the generation stamped."""

    def __init__(
        self,
        store: QueryStore,
        model_id: int,
        identity: ModelIdentity,
        url: str,
        database_url: str,
        collection: str = IMAGE,
        hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
    ) -> None:
        name = collection_name(database_url, identity, collection)
        super().__init__(store, model_id, identity, Path(f"{url}#{name}"), collection, hnsw_threshold)
        self.url = url
        self.name = name
        self._client = milvus_client(url)

    def _new_index(self) -> MilvusIndex:
        if self.collection == IMAGE:
            source: VectorSource = lambda ids: self.store.image_vectors_of(self.model_id, ids)  # noqa: E731
        else:
            source = lambda ids: self.store.vectors_of_texts(self.model_id, ids)  # noqa: E731
        return MilvusIndex(self._client, self.name, self.identity, source)

    def _load_fresh(self) -> MilvusIndex | None:
        state = self._state()
        if state is None or state.get("fingerprint") != self.identity.fingerprint:
            return None
        if state.get("generation") != self.store.generation(self.collection):
            return None
        if not self._client.has_collection(self.name):
            return None
        self._client.load_collection(self.name)
        self.generation = int(state["generation"])
        return self._new_index()

    def facts(self) -> dict[str, Any]:
        """What ``mmsearch status`` shows for the collection (keys as for an index file)."""
        facts: dict[str, Any] = {"path": str(self.path), "kind": MILVUS_KIND, "exists": False}
        state = self._state()
        if state is None or not self._client.has_collection(self.name):
            facts["state"] = "missing (rebuilt from the database on next use)"
            return facts
        current = state.get("fingerprint") == self.identity.fingerprint and state.get(
            "generation"
        ) == self.store.generation(self.collection)
        facts.update(
            exists=True,
            vectors=len(self._new_index()),
            generation=state.get("generation"),
            state="up to date" if current else "stale (rebuilt on next use)",
        )
        return facts

    def stamped_generation(self) -> int | None:
        """The database generation the collection was last stamped with (None: never)."""
        state = self._state()
        return int(state["generation"]) if state and "generation" in state else None

    def rebuild(self) -> MilvusIndex:
        """Recreate the collection from the vectors stored in the database, then stamp it."""
        generation = self.store.generation(self.collection)
        index = self._new_index()
        self._stamp(None)  # a crash during the rebuild leaves an unstamped (stale) collection
        index.create()
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
        """Mirror a committed change in place, then stamp its generation (readers in other processes see the
        collection current between batches, not only at the end of an ingest)."""
        super().apply(generation, add_ids, add_vectors, remove_ids)
        self.save()

    def _maintain(self) -> bool:
        return False  # Milvus manages its own index kind and compaction

    def save(self) -> None:
        if self._index is not None:
            self._stamp(self.generation)

    # -- the meta collection ------------------------------------------------------------------
    def _ensure_meta(self) -> None:
        from pymilvus import DataType

        client = self._client
        if client.has_collection(META_COLLECTION):
            return
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=255)
        schema.add_field("state", DataType.VARCHAR, max_length=8_192)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=_META_DIM)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="L2")
        client.create_collection(META_COLLECTION, schema=schema, index_params=params, consistency_level="Strong")

    def _state(self) -> dict[str, Any] | None:
        self._ensure_meta()
        rows = self._client.get(META_COLLECTION, ids=[self.name], output_fields=["state"])
        if not rows:
            return None
        try:
            state = json.loads(rows[0]["state"])
        except (KeyError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _stamp(self, generation: int | None) -> None:
        """Record the identity and the generation the collection reflects (None: it reflects none)."""
        self._ensure_meta()
        state = {
            "fingerprint": self.identity.fingerprint,
            "identity": self.identity.to_dict(),
            "model_id": self.model_id,
            "collection": self.collection,
            "generation": generation,
        }
        row = {"name": self.name, "state": json.dumps(state, sort_keys=True), "vector": [0.0] * _META_DIM}
        self._client.upsert(META_COLLECTION, data=[row])
