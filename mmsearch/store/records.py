"""The values the metadata store reads and writes: files as the ingest knows them, as it writes them, as a
search shows them; text items; vectors as stored bytes
(float16 in the ``embeddings`` table, float32 in the query cache)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmsearch.errors import MmsearchError
from mmsearch.kinds import IMAGE


@dataclass(frozen=True)
class KnownFile:
    """What the database remembers of a file, enough to decide whether it changed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    kind: str = IMAGE
    sidecar_sig: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: float | None = None


@dataclass(frozen=True)
class FileRecord:
    """A file to write: its stat, content hash, image size and sidecar signature."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    content_hash: str
    width: int | None = None
    height: int | None = None
    sidecar_sig: str | None = None
    taken_at: float | None = None


@dataclass(frozen=True)
class StoredText:
    """A caption, transcript segment or video keyframe as search results show it."""

    id: int
    file_id: int
    kind: str
    source: str
    text: str
    start: float | None
    end: float | None
    at: float | None = None
    """A video keyframe's time (seconds); ``start``/``end`` are then its shot's span."""


@dataclass
class AssetWrite:
    """What :meth:`MetadataStore.write_assets` changed, for mirroring in the vector indexes."""

    file_ids: list[int]
    generations: dict[str, int]
    added_texts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """Per text kind: (item id, content hash) of every inserted item."""
    removed_texts: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredFile:
    """A file as search results show it."""

    id: int
    path: str
    kind: str
    width: int | None
    height: int | None
    size: int
    mtime_ns: int = 0
    taken_at: float | None = None
    """When the photo was taken (EXIF), Unix seconds, if known."""

    @property
    def time(self) -> float:
        """What time filters compare: the capture time when known, else the file's modification time."""
        return self.taken_at if self.taken_at is not None else self.mtime_ns / 1e9


STORED_DTYPE = np.dtype("<f2")
"""How the ``embeddings`` table keeps a vector: little-endian IEEE float16, 2 bytes a component (512 bytes for a
256-d model, half of float32). The store hands it out as float32 (:func:`embedding_from_bytes`).

The contract (tests/unit/test_store.py): the stored vector is each component rounded to the nearest float16
(:func:`stored_precision`), exactly; every float32 vector passes through it more than once unchanged. For a
unit vector (what encoders produce) each component moves by at most 2^-11 of itself (plus 2^-25 for the tiny
ones), so the stored vector is within 2^-11 of the encoder's in L2 norm: its cosine with the float32 vector is
at least 0.9999 (in fact 1 - 1.2e-7) and any score against a unit query moves by at most 0.0005. The vector
indexes keep the same float16 values (``mmsearch.index.faiss_index``), so a score from the index and one
from the database agree exactly, and ranking is measured on the stored vectors."""

COSINE_BOUND = 0.9999
"""The worst cosine allowed between a stored vector and the float32 vector it was made from (the checks in
tests and ``bench/storage.py`` assert it)."""

SCORE_BOUND = 2**-11
"""The most a score (inner product with a unit query) of a stored unit vector can differ from the float32
vector's: a photo searched with itself scores 1 +- 0.0005, not 1 +- 1e-7."""


class VectorRangeError(MmsearchError):
    """A vector with a component float16 cannot hold (not finite, or beyond +-65504): not a unit embedding."""


def stored_precision(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (one or a matrix) as the store keeps them: each component rounded to float16, as float32."""
    array = np.asarray(vectors, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = array.astype(STORED_DTYPE)
    if not np.isfinite(rounded).all():
        raise VectorRangeError("a vector to store has a component that is not finite or lies beyond +-65504")
    return rounded.astype(np.float32)


def embedding_to_bytes(vector: np.ndarray) -> bytes:
    """Serialise one stored vector (``embeddings.vector``): little-endian float16, see :data:`STORED_DTYPE`."""
    return np.ascontiguousarray(stored_precision(vector), dtype=STORED_DTYPE).tobytes()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`embedding_to_bytes`, as float32."""
    return np.frombuffer(data, dtype=STORED_DTYPE).astype(np.float32)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """Serialise one vector as little-endian float32, exactly (the query vector cache)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`vector_to_bytes`."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
