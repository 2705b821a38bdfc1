"""Vector index registry: index kinds by name, created lazily (FAISS is imported on use).

Kinds: ``faiss-flat-ip`` (exact, the default for a new, small collection) and
``faiss-hnsw-ip`` (approximate, updatable). Which one a collection should use is
``mmsearch.index.policy``'s call; a saved index loads as the kind its file records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmsearch.errors import ConfigError, IndexCorruptError
from mmsearch.identity import ModelIdentity
from mmsearch.index.base import VectorIndex
from mmsearch.index.faiss_index import FLAT_KIND, read_header
from mmsearch.index.hnsw_index import HNSW_KIND

IndexFactory = Callable[[ModelIdentity], VectorIndex]
IndexLoader = Callable[[Path], "tuple[VectorIndex, dict[str, Any]]"]

_BACKENDS: dict[str, tuple[IndexFactory, IndexLoader]] = {}
DEFAULT_INDEX_KIND = FLAT_KIND
HNSW_INDEX_KIND = HNSW_KIND


def register_index(kind: str, factory: IndexFactory, loader: IndexLoader) -> None:
    """Make an index kind available under ``kind``."""
    _BACKENDS[kind] = (factory, loader)


def index_kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_BACKENDS)


def _backend(kind: str) -> tuple[IndexFactory, IndexLoader]:
    try:
        return _BACKENDS[kind]
    except KeyError:
        raise ConfigError(f"unknown index kind {kind!r}; known: {', '.join(sorted(_BACKENDS))}") from None


def create_index(identity: ModelIdentity, kind: str = DEFAULT_INDEX_KIND) -> VectorIndex:
    """A new, empty index of ``kind`` for vectors of ``identity``."""
    return _backend(kind)[0](identity)


def load_index(path: Path, kind: str | None = None) -> tuple[VectorIndex, dict[str, Any]]:
    """Load a saved index and its header, as the kind its header records.

    ``kind`` is accepted for compatibility and ignored: the file knows what it holds.
    A file of a kind this build does not know raises IndexCorruptError (so it is rebuilt).
    """
    recorded = read_header(path).get("kind", DEFAULT_INDEX_KIND)
    if recorded not in _BACKENDS:
        raise IndexCorruptError(f"{path} holds an index of unknown kind {recorded!r}")
    return _BACKENDS[recorded][1](path)


def _flat_factory(identity: ModelIdentity) -> VectorIndex:
    from mmsearch.index.faiss_index import FaissIndex

    return FaissIndex(identity)


def _flat_loader(path: Path) -> tuple[VectorIndex, dict[str, Any]]:
    from mmsearch.index.faiss_index import FaissIndex

    return FaissIndex.load(path)


def _hnsw_factory(identity: ModelIdentity) -> VectorIndex:
    from mmsearch.index.hnsw_index import HnswIndex

    return HnswIndex(identity)


def _hnsw_loader(path: Path) -> tuple[VectorIndex, dict[str, Any]]:
    from mmsearch.index.hnsw_index import HnswIndex

    return HnswIndex.load(path)


register_index(FLAT_KIND, _flat_factory, _flat_loader)
register_index(HNSW_KIND, _hnsw_factory, _hnsw_loader)

__all__ = [
    "DEFAULT_INDEX_KIND",
    "HNSW_INDEX_KIND",
    "VectorIndex",
    "create_index",
    "index_kinds",
    "load_index",
    "register_index",
]
