"""Search results."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Hit:
    """One result: the file, its cosine similarity to the query and its rank (1-based)."""

    rank: int
    score: float
    id: int
    path: str
    kind: str
    width: int | None
    height: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
