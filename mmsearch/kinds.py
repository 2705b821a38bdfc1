"""Every kind, mode and method name of mmsearch, defined once; everything else imports it.

No imports: the lowest layer, usable from the store up to the CLI (click choices) without loading anything.
"""

from __future__ import annotations

IMAGE = "image"
"""An image file, and the collection of image vectors (keyed by file id)."""
AUDIO = "audio"
"""An audio file."""
VIDEO = "video"
"""A video file (keyframes and speech), and the search for videos by their best moment."""
CAPTION = "caption"
"""A caption text item, and the collection of caption vectors (keyed by text item id)."""
TRANSCRIPT = "transcript"
"""A transcript segment, and the collection of transcript vectors (keyed by text item id)."""
FRAME = "frame"
"""A video keyframe item (its time and its shot's span), and the collection of keyframe vectors (keyed by item id,
embedded with the image tower)."""
ANY = "any"
"""A search for every asset, by its best evidence."""
KEYWORD = "keyword"
"""The keyword retriever (BM25 / PostgreSQL full text), and the search mode that uses it alone."""

ASSET_KINDS = (IMAGE, AUDIO, VIDEO)
"""What a file in the library is."""
TEXT_KINDS = (CAPTION, TRANSCRIPT)
"""What a text item is."""
ITEM_KINDS = (CAPTION, TRANSCRIPT, FRAME)
"""Every kind of item stored with a file (``text_items``), each with its own vector collection keyed by item id."""
COLLECTIONS = (IMAGE, CAPTION, TRANSCRIPT, FRAME)
"""The vector indexes: image vectors keyed by file id; caption, transcript and keyframe vectors keyed by item id."""
SEARCH_KINDS = (IMAGE, CAPTION, TRANSCRIPT, AUDIO, ANY, VIDEO, FRAME)
"""What a query can look for: images by their pixels, captions, transcript segments, audio files
(by their best segment), any asset by its best evidence, videos (by their best moment: keyframe, segment,
words), or video keyframes one by one."""

HYBRID = "hybrid"
DENSE = "dense"
MODES = (HYBRID, DENSE, KEYWORD)
"""Search modes: vectors and keywords fused, vectors only, keywords only (the first is the default)."""
DEFAULT_MODE = HYBRID

NORMALISATIONS = ("zscore", "minmax")
"""Per-query score calibrations for weighted fusion."""
FUSION_METHODS = ("rrf", *NORMALISATIONS)
DEFAULT_FUSION = "zscore"
CUTOFF_METHODS = ("gap", "zscore")
"""Adaptive relevance cut-offs."""
