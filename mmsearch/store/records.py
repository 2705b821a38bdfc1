"""The values the metadata store reads and writes: files as the ingest knows them, as it writes them, as a
search shows them; text items; vectors as stored bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    """A caption or transcript segment as search results show it."""

    id: int
    file_id: int
    kind: str
    source: str
    text: str
    start: float | None
    end: float | None


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


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """Serialise one vector as little-endian float32."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    """Inverse of :func:`vector_to_bytes`."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
