"""Caption discovery for images: embedded metadata (EXIF, XMP, IPTC), sidecar files and caption manifests."""

from __future__ import annotations

from mmsearch.captions.embedded import clean_caption, embedded_captions, is_placeholder
from mmsearch.captions.manifest import CaptionManifest, load_manifest
from mmsearch.captions.sidecar import CAPTION_SIDECAR_SUFFIXES, caption_sidecars, read_caption_sidecar

__all__ = [
    "CAPTION_SIDECAR_SUFFIXES",
    "CaptionManifest",
    "caption_sidecars",
    "clean_caption",
    "embedded_captions",
    "is_placeholder",
    "load_manifest",
    "read_caption_sidecar",
]
