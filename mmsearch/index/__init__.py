"""Vector index registry: index kinds by name, created lazily (FAISS is imported on use)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmsearch.encoders.base import ModelIdentity
from mmsearch.errors import ConfigError
from mmsearch.index.base import VectorIndex

IndexFactory = Callable[[ModelIdentity], VectorIndex]
IndexLoader = Callable[[Path], "tuple[VectorIndex, dict[str, Any]]"]

_BACKENDS: dict[str, tuple[IndexFactory, IndexLoader]] = {}
DEFAULT_INDEX_KIND = "faiss-flat-ip"


def register_index(kind: str, factory: IndexFactory, loader: IndexLoader) -> None:
    """Make an index kind available under ``kind``."""
    _BACKENDS[kind] = (factory, loader)


def _backend(kind: str) -> tuple[IndexFactory, IndexLoader]:
    try:
        return _BACKENDS[kind]
    except KeyError:
        raise ConfigError(f"unknown index kind {kind!r}; known: {', '.join(sorted(_BACKENDS))}") from None


def create_index(identity: ModelIdentity, kind: str = DEFAULT_INDEX_KIND) -> VectorIndex:
    """A new, empty index of ``kind`` for vectors of ``identity``."""
    return _backend(kind)[0](identity)


def load_index(path: Path, kind: str = DEFAULT_INDEX_KIND) -> tuple[VectorIndex, dict[str, Any]]:
    """Load a saved index and its header."""
    return _backend(kind)[1](path)


def _faiss_factory(identity: ModelIdentity) -> VectorIndex:
    from mmsearch.index.faiss_index import FaissIndex

    return FaissIndex(identity)


def _faiss_loader(path: Path) -> tuple[VectorIndex, dict[str, Any]]:
    from mmsearch.index.faiss_index import FaissIndex

    return FaissIndex.load(path)


register_index(DEFAULT_INDEX_KIND, _faiss_factory, _faiss_loader)

__all__ = ["DEFAULT_INDEX_KIND", "VectorIndex", "create_index", "load_index", "register_index"]
