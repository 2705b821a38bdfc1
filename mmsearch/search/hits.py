"""Search results."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmsearch.kinds import IMAGE


@dataclass(frozen=True)
class Hit:
    """One result: an asset (image or audio file), its score and rank (1-based), and what matched.

    ``match`` is the evidence the score comes from: ``image`` (the picture itself), ``caption`` or
    ``transcript`` or ``keyword``; ``text``, ``start`` and ``end`` (seconds) describe the matching caption or
    segment, and ``item_id`` is its id. Scores are cosine similarities when one retriever answered (an image
    query, dense search without captions) and fused, calibrated scores when several did (see
    :mod:`mmsearch.search.hybrid`); either way higher is better.
    """

    rank: int
    score: float
    id: int
    path: str
    kind: str
    width: int | None
    height: int | None
    match: str = IMAGE
    text: str | None = None
    start: float | None = None
    end: float | None = None
    item_id: int | None = None
    evidence: dict[str, Any] | None = None
    """With ``explain``: each retriever's raw score, rank, normalised score and contribution."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.evidence is None:
            del data["evidence"]
        return data
