"""File names that are not valid UTF-8: how they are stored, shown and written as JSON.

Python gives such a name as a ``str`` holding lone surrogates (``surrogateescape``: byte ``0xff`` becomes
``"\\udcff"``). Everything in memory keeps that form, so ``os.fsencode(path)`` gives back the exact bytes on disk.
Three representations leave the process:

- **stored** (database): a lone surrogate ``U+DC80..U+DCFF`` is written as the private-use character
  ``U+F780..U+F7FF`` (the same low byte), which UTF-8 drivers accept. A name that is valid UTF-8 is stored
  unchanged; one that also holds a character of that private-use range cannot be told apart once stored, so
  :func:`to_stored` refuses it (:class:`UnrepresentableNameError`, a per-file error) rather than confuse two files.
- **shown** (tables, messages): :func:`display` writes each undecodable byte as ``\\xff``.
- **JSON**: :func:`json_text` escapes lone surrogates as ``\\udcff``, which ``json.loads`` turns back into the
  same ``str`` (so ``os.fsencode`` of it gives the original bytes).
"""

from __future__ import annotations

import os
import re

from mmsearch.errors import MmsearchError

_SURROGATES = re.compile("[\udc80-\udcff]")
_STORED_ESCAPES = re.compile("[\uf780-\uf7ff]")
_SHIFT = 0xF780 - 0xDC80


class UnrepresentableNameError(MmsearchError):
    """A valid UTF-8 name that holds a character of the range used to store undecodable bytes."""


def to_stored(path: str) -> str:
    """The database form of ``path`` (identical for any name that is valid UTF-8 and free of U+F780..U+F7FF)."""
    if path.isascii():  # the common case, once per file of every scan: nothing to escape
        return path
    if _STORED_ESCAPES.search(path):
        raise UnrepresentableNameError(
            "file name holds a private-use character (U+F780..U+F7FF) that mmsearch uses to store undecodable bytes"
        )
    return _SURROGATES.sub(lambda match: chr(ord(match.group()) + _SHIFT), path)


def from_stored(text: str) -> str:
    """The in-memory (surrogateescape) form of a stored path; inverse of :func:`to_stored`."""
    if text.isascii():  # once per known file of every ingest: nothing to unescape
        return text
    return _STORED_ESCAPES.sub(lambda match: chr(ord(match.group()) - _SHIFT), text)


def has_undecodable(path: str) -> bool:
    """Whether the name holds bytes that are not valid UTF-8."""
    return _SURROGATES.search(path) is not None


def display(path: str) -> str:
    """A printable form: every undecodable byte as ``\\xNN``, everything else unchanged."""
    if not has_undecodable(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def json_text(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with lone surrogates escaped as ``\\udcNN``."""
    return _SURROGATES.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
