"""Search results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from mmsearch.kinds import IMAGE

if TYPE_CHECKING:
    from mmsearch.search.filters import Filters


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
    frame_time: float | None = None
    """Videos: the time (seconds) of the matching keyframe; ``start``/``end`` are then the moment's span."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.evidence is None:
            del data["evidence"]
        if self.frame_time is None:
            del data["frame_time"]
        return data


SCHEMA_VERSION = 1
"""Of the hits document (``mmsearch/schemas/hits.json``, docs/json.md)."""


@dataclass(frozen=True)
class Asked:
    """What a search asked for, as its results echo it: the query text and image (absolute), kind, mode, k."""

    text: str | None = None
    image: str | None = None
    kind: str = IMAGE
    mode: str = "hybrid"
    k: int = 10


class Hits(list[Hit]):
    """A search's hits, best first: a list of :class:`Hit`, with what was ``asked`` and a ``note`` set when the
    search's filters let no indexed file through (so "no results" says why). :meth:`to_dict` is the hits
    document of the CLI's ``--json``, the service's ``/search`` and ``--from-file`` lines."""

    def __init__(self, hits: Iterable[Hit] = (), note: str | None = None, asked: Asked | None = None) -> None:
        super().__init__(hits)
        self.note = note
        self.asked = asked if asked is not None else Asked()

    def to_dict(self, line: int | None = None, error: str | None = None) -> dict[str, Any]:
        """The hits document; ``line`` and ``error`` for a ``--from-file`` line (an error line has no hits)."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION, **asdict(self.asked)}
        data["query"] = data.pop("text")
        data.update(hits=[hit.to_dict() for hit in self], note=self.note)
        if line is not None:
            data["line"] = line
        if error is not None:
            data["error"] = error
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hits:
        """Inverse of :meth:`to_dict` (keys a newer version adds are ignored)."""
        names = {f.name for f in fields(Hit)}
        hits = [Hit(**{key: value for key, value in hit.items() if key in names}) for hit in data["hits"]]
        asked = Asked(data.get("query"), data.get("image"), data["kind"], data["mode"], data["k"])
        return cls(hits, data.get("note"), asked)


def excluded_note(filters: Filters) -> str:
    return f"the filters ({filters.describe()}) exclude every indexed file"
