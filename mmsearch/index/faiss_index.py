"""Exact inner-product FAISS index (``IndexIDMap2`` over a float16 ``IndexScalarQuantizer``), and the file format
every kind shares.

The flat index keeps each vector as float16 (``QT_fp16``: 512 bytes for a 256-d vector, half of ``IndexFlatIP``),
the precision the database stores (``mmsearch.store.records.STORED_DTYPE``). A vector from the database is
float16 already, so the index holds it exactly and a search's score is the exact inner product (in float32) of
the query with the stored vector, the same number the database's copy gives; a float32 vector given to
:meth:`FaissIndex.add` is rounded to float16 as the store rounds it. A file written before (``IndexFlatIP``,
float32) still loads and searches; the schema upgrade to float16 vectors makes it stale, so it is rebuilt.

On disk an index is one file: a magic line, a JSON header (kind, model identity,
fingerprint, count and the caller's extra keys such as the generation) and a
kind-specific payload, written to a temporary file, fsynced and renamed, so a
reader sees the old file or the new one, never half of one. ``read_header`` reads
the header alone, without FAISS; ``open_index_file``/``write_index_file`` are the
shared halves every index kind's ``load``/``save`` is built on. The FAISS part is streamed
to and from the file, so saving or loading never holds a second copy of the vectors.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mmsearch.errors import IndexCorruptError, ModelMismatchError
from mmsearch.identity import ModelIdentity
from mmsearch.index.base import IndexBase
from mmsearch.index.flat_arrays import FlatArrays, parse_sq_fp16
from mmsearch.index.mapped import Mapping, map_faiss, map_file, owned_copy

MAGIC = b"MMSEARCH-INDEX-1\n"
_LEN = struct.Struct("<Q")
FLAT_KIND = "faiss-flat-ip"
VECTOR_CHUNK = 65536  # rows per chunk when copying every vector out of an index
NUMPY_SEARCH_MAX = 4096
"""A loaded flat index of at most this many vectors is searched with numpy while FAISS is not imported yet:
importing it costs a cold query about 50 ms of CPU; numpy's search takes 0.7 ms at 300 256-d vectors, 2.2 ms at
1,500 and 11 ms at 4,096 (its float16 decoding is slow: 26 ms at 8k and 95 ms at 50k, where FAISS takes 0.6 and
1.6 ms; bench/flat_search.py on 2 busy vCPUs). Once FAISS is imported (a larger index, a change, a search left
to FAISS) FAISS searches."""


class FaissIndex(IndexBase):
    """A FAISS flat inner-product index keyed by database ids: exact, fine while the collection is small.

    Loaded from a file of the usual layout and small (``NUMPY_SEARCH_MAX``), it is searched with numpy over the
    mapped file (``mmsearch.index.flat_arrays``) until FAISS is imported: a cold query does not import it."""

    kind = FLAT_KIND
    exact_scores = True  # flat storage: every score is an exact inner product with the stored (float16) vector

    def __init__(self, identity: ModelIdentity, faiss_index: Any = None, arrays: FlatArrays | None = None) -> None:
        self.identity = identity
        self._arrays = arrays  # the mapped file's vectors, while unchanged and FAISS is not loaded
        self._loaded: Any = faiss_index  # Any: faiss's own stubs (__init__.pyi) lack much of its SWIG API
        if faiss_index is None and arrays is None:
            faiss = _faiss()
            self._loaded = faiss.IndexIDMap2(float16_flat(faiss, identity.dim))
        self._rows: dict[int, int] | None = None
        self._mapping: Mapping | None = None  # set when the vectors are read in place from the file
        self._path: Path | None = None  # that file

    @property
    def _index(self) -> Any:
        """The FAISS index; one read in place only as numpy arrays is read by FAISS too on first need."""
        if self._loaded is None:
            assert self._mapping is not None and self._path is not None  # arrays come only from a mapped file
            self._loaded, _ = map_faiss(self._path, 0, self._mapping)
        return self._loaded

    def _own(self) -> None:
        """Before a change: an index read in place becomes an ordinary copy (``mmsearch.index.mapped``)."""
        if self._mapping is not None:
            self._loaded, self._mapping, self._arrays = owned_copy(self._index), None, None

    def __len__(self) -> int:
        return len(self._arrays) if self._arrays is not None else int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = check_vectors(self.identity, vectors, "vectors")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.remove(ids)  # re-adding an id replaces its vector
        self._own()
        self._index.add_with_ids(vectors, ids)
        self._rows = None

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size == 0 or len(self) == 0:
            return 0
        self._own()
        self._rows = None
        return int(self._index.remove_ids(_faiss().IDSelectorBatch(ids)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row; missing slots have id -1."""
        queries = check_vectors(self.identity, queries, "query vectors")
        k = max(1, min(k, len(self))) if len(self) else 1
        if self._arrays is not None and len(self) <= NUMPY_SEARCH_MAX and "faiss" not in sys.modules:
            found = self._arrays.search(queries, k)
            if found is not None:
                return found
        faiss = _faiss()
        with search_threads(faiss, len(queries)):
            return self._index.search(queries, k)

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored (exact) vector of each given id that is in the index, as float32."""
        if self._rows is None:  # id -> row of the flat storage, rebuilt after a change
            self._rows = dict(zip(self.ids().tolist(), range(len(self)), strict=True))
        wanted = [(int(key), self._rows[int(key)]) for key in ids if int(key) in self._rows]
        if not wanted:
            return {}
        rows = np.array([row for _, row in wanted], dtype=np.int64)
        picked = self._decoded(rows)
        return {key: picked[position] for position, (key, _) in enumerate(wanted)}

    def _decoded(self, rows: np.ndarray) -> np.ndarray:
        if self._arrays is not None:
            return self._arrays.decoded(rows)
        return self._index.index.reconstruct_batch(rows)  # decoded: float32, a copy

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        if self._arrays is not None:
            return self._arrays.ids.astype(np.int64)  # a copy: the mapping's view is read-only
        return _faiss().vector_to_array(self._index.id_map).astype(np.int64)

    def iter_vectors(self, chunk: int = VECTOR_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) pair, in chunks: what converting to another kind re-adds."""
        ids = self.ids()
        for start in range(0, len(ids), chunk):
            stop = min(start + chunk, len(ids))
            yield ids[start:stop], self._decoded(np.arange(start, stop))

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """Write atomically: temp file in the same folder, fsync, rename."""
        header = index_header(self.kind, self.identity, len(self), extra)
        if self._mapping is not None:  # unchanged since read: the same payload
            payload = self._mapping.buffer.data
            write_index_file(path, header, lambda handle: _write_all(handle, payload))
            return
        write_index_file(path, header, lambda handle: write_faiss(self._index, handle))

    @classmethod
    def load(cls, path: Path) -> tuple[FaissIndex, dict[str, Any]]:
        """Read an index written by :meth:`save` (its vectors left in place in the file, see
        ``mmsearch.index.mapped``); returns it with its header."""
        with open_index_file(path) as (header, handle):
            offset = handle.tell()
        identity = ModelIdentity.from_dict(header["identity"])
        mapping = map_file(path, offset)
        arrays = parse_sq_fp16(mapping.buffer, identity.dim)
        if arrays is not None:
            index = cls(identity, arrays=arrays)
        else:  # another layout (an older float32 file, another FAISS version's): FAISS reads it
            raw, mapping = map_faiss(path, offset, mapping)
            index = cls(identity, raw)
        index._mapping, index._path = mapping, path
        return index, header


def _write_all(handle: BinaryIO, payload: memoryview) -> None:
    handle.write(payload)


def _faiss() -> Any:
    """The faiss module, imported on first need."""
    import faiss

    return faiss


def float16_flat(faiss: Any, dim: int) -> Any:
    """An empty flat inner-product storage of float16 vectors (FAISS scalar quantiser ``QT_fp16``, exact on
    float16 values: its scores are float32 inner products with the decoded vectors)."""
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


SINGLE_THREAD_QUERIES = 8
"""Searches of fewer query rows than this run FAISS on one thread: OpenMP's start-up and spin-waiting cost
more than a small search (measured: one query over 1,500 vectors, 6 ms on two threads of a busy 2-core
machine, 0.06 ms on one)."""


@contextmanager
def search_threads(faiss: Any, queries: int) -> Iterator[None]:
    """Run the enclosed FAISS call on one thread when it has only a few query rows."""
    if queries >= SINGLE_THREAD_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def check_vectors(identity: ModelIdentity, vectors: np.ndarray, what: str) -> np.ndarray:
    """``vectors`` as a contiguous float32 matrix of the model's width, or ModelMismatchError."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != identity.dim:
        raise ModelMismatchError(f"{what} of width {vectors.shape[-1]} do not fit an index of dim {identity.dim}")
    return vectors


def index_header(kind: str, identity: ModelIdentity, count: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON header every index file starts with; ``extra`` (generation, parameters, ...) is merged in."""
    return {
        "kind": kind,
        "identity": identity.to_dict(),
        "fingerprint": identity.fingerprint,
        "count": count,
        **extra,
    }


def write_index_file(path: Path, header: dict[str, Any], write_payload: Callable[[BinaryIO], None]) -> None:
    """Magic line, header, then whatever ``write_payload`` writes; atomically (temp file, fsync, rename)."""
    header_bytes = json.dumps(header, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(MAGIC)
            handle.write(_LEN.pack(len(header_bytes)))
            handle.write(header_bytes)
            write_payload(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def open_index_file(path: Path) -> Iterator[tuple[dict[str, Any], BinaryIO]]:
    """The header of a file written by ``write_index_file`` and the open file, positioned at the payload."""
    with path.open("rb") as handle:
        yield _read_header(handle, path), handle


def write_faiss(index: Any, handle: BinaryIO) -> None:
    """Stream a FAISS index into ``handle`` (no second copy of it in memory)."""
    import faiss

    swig: Any = faiss  # Any: faiss's own stubs (__init__.pyi) lack much of its SWIG API
    writer = swig.PyCallbackIOWriter(handle.write)
    try:
        faiss.write_index(index, writer)
    finally:
        del writer


def read_faiss(handle: BinaryIO, path: Path) -> Any:
    """Stream a FAISS index out of ``handle``, which must end with it; damage becomes IndexCorruptError."""
    import faiss

    swig: Any = faiss  # Any: faiss's own stubs (__init__.pyi) lack much of its SWIG API
    reader = swig.PyCallbackIOReader(handle.read)
    try:
        index = faiss.read_index(reader)
    except Exception as exc:  # faiss raises RuntimeError with C++ text
        raise IndexCorruptError(f"cannot read vector index {path}: {exc}") from exc
    finally:
        del reader
    if handle.read(1):
        raise IndexCorruptError(f"{path} has trailing bytes after the vector index")
    return index


def read_exact(handle: BinaryIO, size: int, path: Path) -> bytes:
    """Exactly ``size`` bytes from ``handle``, or IndexCorruptError."""
    data = handle.read(size)
    if len(data) != size:
        raise IndexCorruptError(f"{path} is truncated")
    return data


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a saved index, without importing FAISS or reading the vectors."""
    with path.open("rb") as handle:
        return _read_header(handle, path)


def _read_header(handle: BinaryIO, path: Path) -> dict[str, Any]:
    head = handle.read(len(MAGIC) + _LEN.size)
    if len(head) < len(MAGIC) + _LEN.size or not head.startswith(MAGIC):
        raise IndexCorruptError(f"{path} is not an mmsearch index file")
    (length,) = _LEN.unpack(head[len(MAGIC) :])
    return _decode_header(read_exact(handle, length, path), path)


def _decode_header(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise IndexCorruptError(f"{path} has a damaged header: {exc}") from exc
    if not isinstance(header, dict):
        raise IndexCorruptError(f"{path} has a damaged header: not a JSON object")
    return header
