"""Turn discovered captions and transcripts into text records that fit the text encoder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from mmsearch.audio.segment import normalise_segments
from mmsearch.kinds import TRANSCRIPT
from mmsearch.store.text_items import TextRecord
from mmsearch.textitems import Segment, TextItem
from mmsearch.textsplit import split_text

EMBEDDED_GROUP = "embedded"
SIDECAR_GROUP = "sidecar"
TRANSCRIPT_GROUP = "transcript"
MANIFEST_GROUP_PREFIX = "manifest:"

TokenCounter = Callable[[str], int]


def manifest_group(manifest_path: str) -> str:
    """The group key of captions read from one manifest file."""
    return MANIFEST_GROUP_PREFIX + manifest_path


def text_hash(text: str) -> str:
    """The content key of a text's vector (never equal to a file-content hash: the input is prefixed)."""
    return hashlib.blake2b(b"text\0" + text.encode(), digest_size=32).hexdigest()


def to_records(
    groups: Mapping[str, Sequence[TextItem]], count_tokens: TokenCounter, max_tokens: int
) -> dict[str, list[TextRecord]]:
    """Records per group: captions longer than the encoder's context are split into consecutive chunks
    at word boundaries (every chunk is embedded and searchable); transcript segments are merged when very
    short and split when too long, with times shared out by words."""
    return {group: _group_records(group, items, count_tokens, max_tokens) for group, items in groups.items()}


def _group_records(
    group: str, items: Sequence[TextItem], count_tokens: TokenCounter, max_tokens: int
) -> list[TextRecord]:
    records: list[TextRecord] = []
    pieces: list[tuple[TextItem, str, float | None, float | None]] = []
    if items and items[0].kind == TRANSCRIPT:
        template = items[0]
        segments = [Segment(item.start or 0.0, item.end, item.text) for item in items]
        for segment in normalise_segments(segments, count_tokens, max_tokens):
            pieces.append((template, segment.text, segment.start, segment.end))
    else:
        for item in items:
            for chunk in split_text(item.text, count_tokens, max_tokens):
                pieces.append((item, chunk, item.start, item.end))
    for ordinal, (item, text, start, end) in enumerate(pieces):
        records.append(
            TextRecord(item.kind, group, item.source, item.origin, ordinal, text, start, end, text_hash(text))
        )
    return records
