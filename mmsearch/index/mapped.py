"""FAISS indexes read in place from a memory-mapped file: a cold query loads no vectors it does not touch.

Reading a 1M-vector HNSW file copies about 1.3 GB (256-d) into memory before the first search; mapped, the
loader only walks the file's structure and the vectors and graph lists stay in the page cache, read on demand
by the search (``bench/scale.py``: cold query at 100k and 1M items). FAISS points the index's storage into the
mapping (``ZeroCopyIOReader``); such an index must not be changed (FAISS aborts the process when a viewed
vector is resized), so :func:`owned_copy` turns it into an ordinary one before the first change.

The index files are only ever replaced by a rename (``write_index_file``), never rewritten in place, so a
mapping stays valid (it keeps the old file's data) while a newer file takes its name.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.errors import IndexCorruptError


class Mapping:
    """Keeps a file mapping (and the array over it) alive as long as the index that points into it."""

    def __init__(self, handle: mmap.mmap, buffer: np.ndarray) -> None:
        self.handle = handle
        self.buffer = buffer


def map_file(path: Path, offset: int) -> Mapping:
    """``path`` mapped read-only, its buffer the bytes from ``offset`` to the end (IndexCorruptError if none)."""
    with path.open("rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:  # an empty file cannot be mapped
            raise IndexCorruptError(f"{path} is truncated: {exc}") from exc
    buffer = np.frombuffer(mapped, dtype=np.uint8)[offset:]
    if buffer.size == 0:
        raise IndexCorruptError(f"{path} is truncated")
    return Mapping(mapped, buffer)


def map_faiss(path: Path, offset: int, mapping: Mapping | None = None) -> tuple[Any, Mapping]:
    """The FAISS index stored in ``path`` from byte ``offset`` to the end, its storage left in the mapping
    (``mapping``: that file's, already made by :func:`map_file`)."""
    import faiss as faiss_module

    faiss: Any = faiss_module  # Any: faiss's stubs lack much of its SWIG API (ZeroCopyIOReader among it)
    mapping = mapping if mapping is not None else map_file(path, offset)
    buffer = mapping.buffer
    reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(buffer), buffer.size)
    try:
        index = faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)
    except Exception as exc:  # faiss raises RuntimeError with C++ text
        raise IndexCorruptError(f"cannot read vector index {path}: {exc}") from exc
    if int(reader.rp_) != int(reader.total_):
        raise IndexCorruptError(f"{path} has trailing bytes after the vector index")
    return index, mapping


def owned_copy(index: Any) -> Any:
    """An ordinary (changeable) copy of a mapped FAISS index."""
    import faiss

    return faiss.deserialize_index(faiss.serialize_index(index))
