"""An indexed asset as callers see it: the file's facts with its captions and transcript segments."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class AssetText:
    """A caption or transcript segment of an asset (``start``/``end`` in seconds for transcript segments)."""

    id: int
    kind: str
    source: str
    text: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Asset:
    """One indexed file: ``id`` is its database id, the only name by which the web app serves it.

    ``modified`` is the file's modification time and ``taken`` its capture time (EXIF) when known, both Unix
    seconds; ``size`` and ``mtime_ns`` tell whether the file changed (thumbnails are keyed on them).
    """

    id: int
    path: str
    kind: str
    width: int | None
    height: int | None
    size: int
    mtime_ns: int
    taken: float | None
    texts: list[AssetText] = field(default_factory=list)

    @property
    def modified(self) -> float:
        return self.mtime_ns / 1e9

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["modified"] = self.modified
        return data
