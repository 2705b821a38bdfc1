"""Text attached to assets: captions of images and transcript segments of audio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextItem:
    """One piece of text to embed for an asset, with where it came from.

    ``source`` names the kind of origin: ``sidecar``, ``exif``, ``xmp``, ``iptc``, ``manifest`` for captions;
    ``srt``, ``vtt``, ``txt``, ``speech`` for transcripts. ``origin`` is the file it was read from when that is
    not the asset itself (a sidecar or a manifest). ``start``/``end`` are seconds into audio, when known.
    """

    kind: str
    source: str
    text: str
    origin: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Segment:
    """A timed piece of a transcript; ``end`` is ``None`` when unknown."""

    start: float
    end: float | None
    text: str
