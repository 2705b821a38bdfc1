"""Typed reports of the engine's maintenance calls (ingest, status and evaluation have theirs beside their code:
:class:`~mmsearch.ingest.report.IngestReport`, :class:`~mmsearch.status.StatusReport`,
:class:`~mmsearch.evaluation.EvalReport`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmsearch.kinds import IMAGE

SCHEMA_VERSION = 1
"""Of the reindex document (``mmsearch/schemas/reindex.json``)."""


@dataclass(frozen=True)
class IndexRebuilt:
    """One rebuilt vector index: how many vectors it holds, and its file."""

    vectors: int
    path: str


@dataclass(frozen=True)
class ReindexReport:
    """What :meth:`Engine.reindex` rebuilt: every collection's index, for ``model``, in ``elapsed_s``."""

    model: str
    indexes: dict[str, IndexRebuilt]
    elapsed_s: float

    @property
    def vectors(self) -> int:
        """Vectors in every index together."""
        return sum(entry.vectors for entry in self.indexes.values())

    @property
    def path(self) -> str:
        """The image index's file."""
        return self.indexes[IMAGE].path

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "vectors": self.vectors,
            "indexes": {name: {"vectors": e.vectors, "path": e.path} for name, e in self.indexes.items()},
            "path": self.path,
            "elapsed_s": self.elapsed_s,
        }

    def __getitem__(self, key: str) -> Any:
        """``report["vectors"]``: the dictionary this call returned before it had a type."""
        return self.to_dict()[key]
