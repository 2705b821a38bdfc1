"""Exact inner-product FAISS index (``IndexIDMap2`` over ``IndexFlatIP``), saved atomically.

On disk an index is one file: a magic line, a JSON header (model identity, kind,
generation, count) and the serialised FAISS index, written to a temporary file
and renamed, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import IndexCorruptError, ModelMismatchError

MAGIC = b"MMSEARCH-INDEX-1\n"
_LEN = struct.Struct("<Q")


class FaissIndex:
    """A FAISS flat inner-product index keyed by database ids."""

    kind = "faiss-flat-ip"

    def __init__(self, identity: ModelIdentity, faiss_index: Any = None) -> None:
        import faiss

        self.identity = identity
        self._faiss = faiss
        self._index = faiss_index if faiss_index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(identity.dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.identity.dim:
            raise ModelMismatchError(
                f"vectors of width {vectors.shape[-1]} do not fit an index of dim {self.identity.dim}"
            )
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.remove(ids)  # re-adding an id replaces its vector
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size == 0 or self._index.ntotal == 0:
            return 0
        return int(self._index.remove_ids(self._faiss.IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row; missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.shape[1] != self.identity.dim:
            raise ModelMismatchError(
                f"query vectors of width {queries.shape[1]} do not fit an index of dim {self.identity.dim}"
            )
        k = max(1, min(k, len(self))) if len(self) else 1
        return self._index.search(queries, k)

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        return self._faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """Write atomically: temp file in the same folder, fsync, rename."""
        header = {
            "kind": self.kind,
            "identity": self.identity.to_dict(),
            "fingerprint": self.identity.fingerprint,
            "count": len(self),
            **extra,
        }
        payload = self._faiss.serialize_index(self._index)
        header_bytes = json.dumps(header, sort_keys=True).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC)
                handle.write(_LEN.pack(len(header_bytes)))
                handle.write(header_bytes)
                handle.write(memoryview(payload))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> tuple[FaissIndex, dict[str, Any]]:
        """Read an index written by :meth:`save`; returns it with its header."""
        import faiss

        data = path.read_bytes()
        header, offset = _parse_header(data, path)
        try:
            raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8, offset=offset))
        except Exception as exc:  # faiss raises RuntimeError with C++ text
            raise IndexCorruptError(f"cannot read vector index {path}: {exc}") from exc
        identity = ModelIdentity.from_dict(header["identity"])
        return cls(identity, raw), header


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a saved index, without importing FAISS or reading the vectors."""
    with path.open("rb") as handle:
        head = handle.read(len(MAGIC) + _LEN.size)
        if len(head) < len(MAGIC) + _LEN.size or not head.startswith(MAGIC):
            raise IndexCorruptError(f"{path} is not an mmsearch index file")
        (length,) = _LEN.unpack(head[len(MAGIC) :])
        return _decode_header(handle.read(length), path)


def _parse_header(data: bytes, path: Path) -> tuple[dict[str, Any], int]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LEN.size:
        raise IndexCorruptError(f"{path} is not an mmsearch index file")
    (length,) = _LEN.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    return _decode_header(data[start : start + length], path), start + length


def _decode_header(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise IndexCorruptError(f"{path} has a damaged header: {exc}") from exc
