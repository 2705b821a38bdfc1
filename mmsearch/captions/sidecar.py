"""Caption sidecar files: ``photo.txt`` or ``photo.caption`` next to ``photo.jpg``, one caption a line."""

from __future__ import annotations

import codecs
import itertools
import os
import re
from collections.abc import Collection, Iterable, Set

from mmsearch.captions.embedded import clean_caption
from mmsearch.errors import UnreadableMediaError
from mmsearch.kinds import CAPTION
from mmsearch.textitems import TextItem

CAPTION_SIDECAR_SUFFIXES = (".txt", ".caption")
MAX_SIDECAR_BYTES = 1024 * 1024
# Only real line breaks: str.splitlines() would also split at U+0085, which is "…" in a latin-1 decoded file.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _case_variants(suffix: str) -> tuple[str, ...]:
    return tuple("".join(chars) for chars in itertools.product(*({c.lower(), c.upper()} for c in suffix)))


# Every spelling of every suffix (".txt", ".TXT", ".Txt", ...): with a set of names, a lookup per spelling finds
# the sidecars of an image without walking the whole folder.
_SUFFIX_SPELLINGS = tuple(sorted({v for suffix in CAPTION_SIDECAR_SUFFIXES for v in _case_variants(suffix)}))
_SUFFIXES_LOWER = frozenset(CAPTION_SIDECAR_SUFFIXES)


def caption_sidecars(image_path: str, names_in_folder: Collection[str]) -> list[str]:
    """Paths of the caption sidecars of ``image_path`` among ``names_in_folder`` (the file names in its folder),
    sorted. A sidecar has the image's stem and a suffix of :data:`CAPTION_SIDECAR_SUFFIXES`, any case.

    Pass a set (or frozenset, or dict keys) for constant time per image; another collection is scanned.
    """
    folder, name = os.path.split(image_path)
    stem = os.path.splitext(name)[0]
    if isinstance(names_in_folder, Set):
        found = [stem + spelling for spelling in _SUFFIX_SPELLINGS if stem + spelling in names_in_folder]
    else:
        found = [
            other
            for other in names_in_folder
            if (split := os.path.splitext(other))[0] == stem and split[1].lower() in _SUFFIXES_LOWER
        ]
    return sorted(os.path.join(folder, other) for other in set(found) if other != name)


def caption_sidecar_names(names_in_folder: Iterable[str]) -> dict[str, list[str]]:
    """The names among ``names_in_folder`` that are caption sidecars of some stem, by that stem (sorted): built
    once per folder, it answers :func:`caption_sidecars` for each image of the folder with one lookup."""
    by_stem: dict[str, list[str]] = {}
    for name in names_in_folder:
        stem, suffix = os.path.splitext(name)
        if suffix.lower() in _SUFFIXES_LOWER:
            by_stem.setdefault(stem, []).append(name)
    for names in by_stem.values():
        names.sort()
    return by_stem


def read_caption_sidecar(path: str) -> list[TextItem]:
    """The captions in a sidecar file: one per non-empty line, cleaned, exact repeats dropped, in file order.

    UTF-8 (a byte-order mark is tolerated, and UTF-16 with one), else latin-1. Raises
    :class:`UnreadableMediaError` when the file cannot be read or is over 1 MiB.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read caption sidecar {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_SIDECAR_BYTES:
        raise UnreadableMediaError(f"caption sidecar {path} is over the {MAX_SIDECAR_BYTES >> 20} MiB limit")
    if looks_binary(data):
        raise UnreadableMediaError(f"caption sidecar {path} is not a text file (binary data)")
    items: list[TextItem] = []
    seen: set[str] = set()
    for line in _LINE_BREAK.split(decode_text(data)):
        text = clean_caption(line)
        if text and text not in seen:
            seen.add(text)
            items.append(TextItem(CAPTION, "sidecar", text, origin=path))
    return items


_CONTROL_BYTES = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D} | {0x7F}
BINARY_CONTROL_SHARE = 0.05
"""Text with more control bytes than this share (tab and line breaks aside) is taken for binary data."""


def looks_binary(data: bytes) -> bool:
    """Whether ``data`` is binary rather than text: a NUL byte outside UTF-16 (which starts with its byte-order
    mark), or more than :data:`BINARY_CONTROL_SHARE` control bytes. Latin-1 and Windows-1252 text pass."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if b"\0" in data:
        return True
    controls = sum(1 for byte in data if byte in _CONTROL_BYTES)
    return controls > BINARY_CONTROL_SHARE * max(len(data), 1)


def decode_text(data: bytes) -> str:
    """Text file bytes as a string: UTF-8 (BOM dropped), UTF-16 when it starts with its BOM, else latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")
