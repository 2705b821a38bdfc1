"""The moment a video hit points at: a shot (its span, its best keyframe's time, the words said in it) or a
transcript segment. :func:`fused_moment` chooses among every keyframe and segment of the video scored against the
query (the general search path); :func:`best_moment` from the best keyframe and best segment alone (the one-index
fast path, keyword-only searches), whichever evidence carried the hit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mmsearch.kinds import FRAME, TRANSCRIPT
from mmsearch.search.hits import Hit
from mmsearch.store.records import StoredText


@dataclass(frozen=True)
class Moment:
    """Where in a video: ``start``/``end`` seconds, the keyframe's time, the words said then, the item it came from."""

    start: float | None
    end: float | None
    frame_time: float | None
    text: str | None
    item_id: int


def best_moment(main: str, frame: StoredText | None, segment: StoredText | None) -> Moment | None:
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


def overlaps(item: StoredText, start: float | None, end: float | None) -> bool:
    """Whether ``item``'s span meets [start, end] (an unknown end counts as the start: a point)."""
    if item.start is None or start is None:
        return False
    item_end = item.end if item.end is not None else item.start
    end = end if end is not None else start
    return item.start <= end and start <= item_end


def fused_moment(
    frames: Sequence[tuple[StoredText, float]],
    segments: Sequence[tuple[StoredText, float]],
    frame_weight: float = 1.0,
    speech_weight: float = 1.0,
) -> Moment | None:
    """The best moment of one video from every keyframe's and transcript segment's cosine with the query.

    Each kind of evidence is calibrated within the video (z-scores of its items' cosines), so what counts is how
    much an item stands out from the rest of its video. With keyframes (and a frame weight above 0) the candidates
    are the shots: each scores its best keyframe plus the best segment said during it (most of the segment inside
    the shot), weighted; the moment is the shot's span, its best keyframe's time and that segment's text. Without
    keyframes the best segment is the moment. None when there is no evidence.
    """
    frame_z = _zscores([score for _, score in frames])
    segment_z = _zscores([score for _, score in segments])
    if frames and frame_weight > 0:
        shots: dict[tuple[float | None, float | None], list[tuple[StoredText, float]]] = {}
        for (item, _), z in zip(frames, frame_z, strict=True):
            shots.setdefault((item.start, item.end), []).append((item, z))
        best: tuple[float, Moment] | None = None
        for (start, end), members in shots.items():
            frame, z = max(members, key=lambda entry: entry[1])
            said = [(s, sz) for (s, _), sz in zip(segments, segment_z, strict=True) if _mostly_inside(s, start, end)]
            segment, speech = max(said, key=lambda entry: entry[1]) if said else (None, 0.0)
            score = frame_weight * z + speech_weight * speech
            if best is None or score > best[0]:
                best = (score, Moment(start, end, frame.at, segment.text if segment else None, frame.id))
        return best[1] if best else None
    if not segments or speech_weight <= 0:
        return None
    segment, _ = max(zip((s for s, _ in segments), segment_z, strict=True), key=lambda entry: entry[1])
    inside = [
        (f, z) for (f, _), z in zip(frames, frame_z, strict=True) if f.at is not None and overlaps(segment, f.at, f.at)
    ]
    at = max(inside, key=lambda entry: entry[1])[0].at if inside else None
    return Moment(segment.start, segment.end, at, segment.text, segment.id)


def _zscores(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [0.0] * len(values)
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return [(v - mean) / spread if spread > 1e-9 else 0.0 for v in values]


def _mostly_inside(item: StoredText, start: float | None, end: float | None) -> bool:
    """Whether at least half of ``item``'s span (or its start, when it has no end) lies in [start, end]."""
    if item.start is None or start is None or end is None:
        return False
    if item.end is None or item.end <= item.start:
        return start <= item.start <= end
    inside = min(item.end, end) - max(item.start, start)
    return inside >= 0.5 * (item.end - item.start)


def with_moment(hit: Hit, moment: Moment | None) -> Hit:
    """``hit`` pointing at ``moment`` (its span, keyframe time, words and item); unchanged when there is none."""
    if moment is None:
        return hit
    return replace(
        hit, start=moment.start, end=moment.end, frame_time=moment.frame_time, text=moment.text, item_id=moment.item_id
    )


def scored_moment(
    scored: Mapping[str, list[tuple[int, float]]],
    items: Mapping[int, StoredText],
    frame_weight: float,
    speech_weight: float,
) -> Moment | None:
    """:func:`fused_moment` from every keyframe's and segment's score (item id -> score, per retriever)."""
    frames = [(items[i], s) for i, s in scored.get(FRAME, []) if i in items]
    segments = [(items[i], s) for i, s in scored.get(TRANSCRIPT, []) if i in items]
    return fused_moment(frames, segments, frame_weight, speech_weight)
