"""Video files: probing (PyAV), shot boundaries, keyframe selection, rotation, subtitle streams, moments and
storyboards. Nothing here touches the database or a model: :mod:`mmsearch.ingest.video` ties it together."""

from __future__ import annotations

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".3gp"})
