"""Why a file was not indexed: the small vocabulary of reason classes in ingest reports (text, ``--json``).

A file under the ingested folder ends in exactly one of three ways: indexed; **skipped** (it is not something
mmsearch indexes, and nothing is wrong with it: a video, a FIFO, a link that leads out of the folder); or
**failed** (it should have been indexed but could not be: a corrupt image, a file that vanished mid-run). Each
skipped and failed file carries one of the classes below; the message next to it gives the detail.
"""

from __future__ import annotations

# -- skipped: not something mmsearch indexes --------------------------------------------------------------------
UNSUPPORTED_TYPE = "unsupported-type"
"""A suffix mmsearch does not read: videos, camera RAW, documents, unknown suffixes."""
NEEDS_PLUGIN = "needs-plugin"
"""An image format that needs an optional package that is not installed (HEIC/HEIF: pillow-heif)."""
NOT_A_REGULAR_FILE = "not-a-regular-file"
"""A FIFO, socket or device file (never opened: reading a FIFO would block)."""
BROKEN_SYMLINK = "broken-symlink"
"""A symbolic link whose target does not exist."""
SYMLINK_LOOP = "symlink-loop"
"""A symbolic link that leads back to itself or to a folder above it."""
SYMLINK_OUTSIDE = "symlink-outside"
"""A symbolic link to a folder outside the ingested folder (folders behind links are never followed)."""
SYMLINKED_FOLDER = "symlinked-folder"
"""A symbolic link to a folder inside the ingested folder (already walked under its real path)."""

SKIP_REASONS = (
    UNSUPPORTED_TYPE,
    NEEDS_PLUGIN,
    NOT_A_REGULAR_FILE,
    BROKEN_SYMLINK,
    SYMLINK_LOOP,
    SYMLINK_OUTSIDE,
    SYMLINKED_FOLDER,
)

# -- failed: should have been indexed ---------------------------------------------------------------------------
DECODE_ERROR = "decode-error"
"""Not a readable image or audio file of its type: truncated, corrupt, mislabelled."""
TOO_MANY_PIXELS = "too-many-pixels"
"""Over the pixel limit (decompression bomb guard) or over the decoded-size limit; refused before decoding."""
EXTREME_ASPECT = "extreme-aspect"
"""A side ratio beyond the limit (30000x1): the model's resize would need gigabytes; refused before decoding."""
FILE_TOO_LARGE = "file-too-large"
"""An image file larger than the size limit (it is read whole to be hashed and decoded)."""
EMPTY_FILE = "empty-file"
"""A media file of 0 bytes."""
UNREADABLE = "unreadable"
"""The file or folder cannot be read (permissions, I/O error)."""
VANISHED = "vanished"
"""The file was deleted (or replaced by something else) while the run was going on."""
BAD_NAME = "bad-name"
"""A name the database cannot hold unambiguously (see :mod:`mmsearch.pathnames`)."""
BAD_SIDECAR = "bad-sidecar"
"""A caption or transcript sidecar that is binary, in an unknown encoding, malformed or too large."""
NO_TRANSCRIBER = "no-transcriber"
"""Audio without a transcript sidecar, and no speech-to-text model available."""
ERROR = "error"
"""Anything else (the message says what)."""

FAIL_REASONS = (
    DECODE_ERROR,
    TOO_MANY_PIXELS,
    EXTREME_ASPECT,
    FILE_TOO_LARGE,
    EMPTY_FILE,
    UNREADABLE,
    VANISHED,
    BAD_NAME,
    BAD_SIDECAR,
    NO_TRANSCRIBER,
    ERROR,
)
