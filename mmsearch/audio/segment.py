"""Shape transcript segments for the text encoder: merge fragments, split what overflows its context."""

from __future__ import annotations

from collections.abc import Sequence

from mmsearch.textitems import Segment
from mmsearch.textsplit import TokenCounter, split_text


def normalise_segments(
    segments: Sequence[Segment],
    count_tokens: TokenCounter,
    max_tokens: int,
    min_words: int = 4,
    min_seconds: float = 2.0,
) -> list[Segment]:
    """Segments ready to embed: ordered by start, none empty, each with ``count_tokens(text) <= max_tokens``.

    A segment longer than the context is split with :func:`split_text`; each part gets a share of the time span
    proportional to its share of the words (parts of a segment with no end keep its start and no end). Then a
    short segment (fewer than ``min_words`` words, or timed and under ``min_seconds``) is merged into its
    neighbour while the merged text still fits. An end before its start is taken as the start. Every word is
    kept, in order (a word too long for the context on its own is cut into pieces).
    """
    ordered = sorted(
        (
            Segment(s.start, None if s.end is None else max(s.end, s.start), text)
            for s in segments
            if (text := " ".join(s.text.split()))
        ),
        key=lambda s: s.start,
    )
    parts = [part for segment in ordered for part in _split(segment, count_tokens, max_tokens)]
    parts.sort(key=lambda s: s.start)  # parts of a long segment can start after a segment overlapping it
    return _merge_short(parts, count_tokens, max_tokens, min_words, min_seconds)


def _split(segment: Segment, count_tokens: TokenCounter, max_tokens: int) -> list[Segment]:
    chunks = split_text(segment.text, count_tokens, max_tokens)
    if len(chunks) <= 1:
        return [segment]
    if segment.end is None:
        return [Segment(segment.start, None, chunk) for chunk in chunks]
    counts = [len(chunk.split()) for chunk in chunks]
    total = sum(counts)
    span = segment.end - segment.start
    parts = []
    done = 0
    start = segment.start
    for index, (chunk, count) in enumerate(zip(chunks, counts, strict=True)):
        done += count
        end = segment.end if index == len(chunks) - 1 else min(segment.start + span * done / total, segment.end)
        parts.append(Segment(start, end, chunk))
        start = end
    return parts


def _merge_short(
    segments: list[Segment], count_tokens: TokenCounter, max_tokens: int, min_words: int, min_seconds: float
) -> list[Segment]:
    """One pass: a segment joins the one before it when either of them is short and the join fits."""

    def short(segment: Segment) -> bool:
        if len(segment.text.split()) < min_words:
            return True
        return segment.end is not None and segment.end - segment.start < min_seconds

    merged: list[Segment] = []
    for segment in segments:
        if merged and (short(merged[-1]) or short(segment)):
            joined = _join(merged[-1], segment)
            if count_tokens(joined.text) <= max_tokens:
                merged[-1] = joined
                continue
        merged.append(segment)
    return merged


def _join(first: Segment, second: Segment) -> Segment:
    """``first`` then ``second`` as one segment; its end is unknown when the later one's is."""
    if second.end is None:
        end = None
    elif first.end is None:
        end = second.end
    else:
        end = max(first.end, second.end)
    return Segment(first.start, end, f"{first.text} {second.text}")
