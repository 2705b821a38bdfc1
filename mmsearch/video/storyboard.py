"""A storyboard of an indexed video: its shots with their times and keyframes, and the transcript lines said
during each, readable without playing the video (``mmsearch show``, ``Engine.describe``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mmsearch.kinds import FRAME, TRANSCRIPT
from mmsearch.store.records import StoredText


@dataclass(frozen=True)
class Line:
    start: float | None
    end: float | None
    text: str


@dataclass
class Shot:
    start: float
    end: float
    frames: list[float] = field(default_factory=list)
    """Times (seconds) of the shot's keyframes."""
    lines: list[Line] = field(default_factory=list)


@dataclass
class Storyboard:
    path: str
    shots: list[Shot] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    """Transcript lines outside every shot (or untimed)."""

    @property
    def duration(self) -> float:
        return max((shot.end for shot in self.shots), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "duration": self.duration, **asdict(self)}


def build_storyboard(path: str, items: Sequence[StoredText]) -> Storyboard:
    """Group keyframes by shot (their shared span) and give each transcript line to the shot holding its middle."""
    shots: dict[tuple[float, float], Shot] = {}
    for item in sorted((i for i in items if i.kind == FRAME), key=lambda i: (i.start or 0.0, i.at or 0.0)):
        start, end = item.start or 0.0, item.end or 0.0
        frames = shots.setdefault((start, end), Shot(start, end)).frames
        if item.at is not None:
            frames.append(item.at)
    board = Storyboard(path, sorted(shots.values(), key=lambda s: s.start))
    for item in sorted((i for i in items if i.kind == TRANSCRIPT), key=lambda i: (i.start is None, i.start or 0.0)):
        line = Line(item.start, item.end, item.text)
        shot: Shot | None = _shot_at(board.shots, _middle(line)) if line.start is not None else None
        (shot.lines if shot is not None else board.lines).append(line)
    return board


def _middle(line: Line) -> float:
    assert line.start is not None
    return (line.start + line.end) / 2 if line.end is not None else line.start


def _shot_at(shots: list[Shot], time: float) -> Shot | None:
    for shot in shots:
        if shot.start <= time < shot.end or (time == shot.end and shot is shots[-1]):
            return shot
    return None
