"""Every kind, mode and method name of mmsearch, defined once; everything else imports it.

No imports: the lowest layer, usable from the store up to the CLI (click choices) without loading anything.
"""

from __future__ import annotations

IMAGE = "image"
"""An image file, and the collection of image vectors (keyed by file id)."""
AUDIO = "audio"
"""An audio file."""
CAPTION = "caption"
"""A caption text item, and the collection of caption vectors (keyed by text item id)."""
TRANSCRIPT = "transcript"
"""A transcript segment, and the collection of transcript vectors (keyed by text item id)."""
ANY = "any"
"""A search for every asset, by its best evidence."""
KEYWORD = "keyword"
"""The keyword retriever (BM25 / PostgreSQL full text), and the search mode that uses it alone."""

ASSET_KINDS = (IMAGE, AUDIO)
"""What a file in the library is."""
TEXT_KINDS = (CAPTION, TRANSCRIPT)
"""What a text item is."""
COLLECTIONS = (IMAGE, CAPTION, TRANSCRIPT)
"""The vector indexes: image vectors keyed by file id, caption and transcript vectors keyed by text item id."""
SEARCH_KINDS = (IMAGE, CAPTION, TRANSCRIPT, AUDIO, ANY)
"""What a query can look for: images by their pixels, captions, transcript segments, audio files
(by their best segment), or any asset by its best evidence."""

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
