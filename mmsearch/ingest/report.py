"""What an ingest run did, for people (summary line) and programs (``to_dict``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; phases are ``"hashing"`` and ``"embedding"``."""


@dataclass(frozen=True)
class FailedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    """Counts of an ingest run. ``embedded`` files went through the model; ``reused`` got a stored vector."""

    folder: str
    model: str = ""
    added: int = 0
    updated: int = 0
    removed: int = 0
    skipped: int = 0
    embedded: int = 0
    reused: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    elapsed_s: float = 0.0
    embed_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Files embedded per second of the whole run."""
        return self.embedded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_count"] = len(self.failed)
        data["images_per_s"] = round(self.images_per_s, 2)
        return data
