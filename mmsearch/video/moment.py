"""The moment a video hit points at: from its best keyframe (the shot's span and the frame's time) or its best
transcript segment (the segment's span and words), whichever evidence carried the hit, with the other kind of
evidence added where the two agree in time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

FRAME = "frame"


class TimedItem(Protocol):
    """What a moment is made of: a stored keyframe or transcript segment (``mmsearch.store`` ``StoredText``)."""

    id: int
    text: str
    start: float | None
    end: float | None
    at: float | None


@dataclass(frozen=True)
class Moment:
    start: float | None
    end: float | None
    frame_time: float | None
    text: str | None
    item_id: int


def best_moment(main: str, frame: TimedItem | None, segment: TimedItem | None) -> Moment | None:
    """The moment of a video hit whose score came mostly from ``main`` (a retriever name): the keyframe's shot
    when ``main`` is ``frame`` or there is no segment, else the segment. None when there is neither."""
    if frame is not None and (segment is None or main == FRAME):
        text = segment.text if segment is not None and overlaps(segment, frame.start, frame.end) else None
        return Moment(frame.start, frame.end, frame.at, text, frame.id)
    if segment is None:
        return None
    at = None
    if frame is not None and frame.at is not None and overlaps(segment, frame.at, frame.at):
        at = frame.at
    return Moment(segment.start, segment.end, at, segment.text, segment.id)


def overlaps(item: TimedItem, start: float | None, end: float | None) -> bool:
    """Whether ``item``'s span meets [start, end] (an unknown end counts as the start: a point)."""
    if item.start is None or start is None:
        return False
    item_end = item.end if item.end is not None else item.start
    end = end if end is not None else start
    return item.start <= end and start <= item_end
