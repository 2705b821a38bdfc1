"""Caption manifests given at ingest (``mmsearch ingest FOLDER --captions FILE``): image paths with captions.

Formats, by extension: ``.tsv`` and ``.csv`` (a header naming the image and caption columns, or no header: first
column the path, last the caption), ``.jsonl`` (one object a line) and ``.json`` (COCO captions, a
``{path: caption | [captions]}`` object, or a list of objects as in ``.jsonl``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mmsearch.captions.embedded import clean_caption
from mmsearch.captions.sidecar import decode_text
from mmsearch.errors import ManifestError
from mmsearch.kinds import CAPTION
from mmsearch.textitems import TextItem

IMAGE_COLUMNS = ("image", "path", "file", "filename", "file_name", "image_path")
CAPTION_COLUMNS = ("caption", "text", "description", "captions")
MANIFEST_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json")
MAX_MANIFEST_BYTES = 512 * 1024 * 1024

Entries = dict[str, list[str]]


class CaptionManifest:
    """Captions by image, with lookups precomputed so :meth:`captions_for` is constant time.

    A key is matched to an (absolute) image path when it is absolute and names that path; when it is relative and
    names that path from the manifest's folder or from ``base`` (the ingested folder); or when it is a bare file
    name, unique among the keys' file names, equal to the image's file name. Symbolic links in the folders a key
    names are followed. Always true, even when empty: use ``len()`` for the number of keys.
    """

    __slots__ = ("_by_name", "_by_path", "_items", "base", "path")

    def __init__(self, path: str, entries: Mapping[str, Iterable[str]], base: str | None = None) -> None:
        """``path``: the manifest file (made absolute); ``entries``: captions by key, in manifest order
        (cleaned here; empty captions and exact repeats dropped, keys without captions left out)."""
        self.path = os.path.abspath(path)
        self.base = os.path.abspath(base) if base is not None else None
        merged: dict[str, dict[str, None]] = {}
        for raw_key, captions in entries.items():
            texts = merged.setdefault(raw_key.strip(), {})
            for caption in captions:
                if text := clean_caption(caption):
                    texts[text] = None
        self._items: dict[str, tuple[TextItem, ...]] = {
            key: tuple(TextItem(CAPTION, "manifest", text, origin=self.path) for text in texts)
            for key, texts in merged.items()
            if key and texts
        }
        self._by_path, self._by_name = self._lookups()

    def _lookups(self) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
        roots = list(dict.fromkeys([os.path.dirname(self.path), *_aliases(self.base)]))
        prefixes: dict[str, tuple[str, ...]] = {}  # a key's folder -> the folders it may name, ending with a sep
        by_path: dict[str, list[str]] = {}
        names: Counter[str] = Counter()
        for key in self._items:
            folder, name = os.path.split(os.path.normpath(key))
            names[name] += 1
            if folder not in prefixes:
                prefixes[folder] = _folder_prefixes(folder, roots)
            for prefix in prefixes[folder]:
                keys = by_path.setdefault(prefix + name, [])
                if key not in keys:
                    keys.append(key)
        by_name = {key: key for key in self._items if _is_bare(key) and names[key] == 1}
        return {path: tuple(keys) for path, keys in by_path.items()}, by_name

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"CaptionManifest({self.path!r}, {len(self)} keys)"

    @property
    def keys(self) -> tuple[str, ...]:
        """The image keys as written in the manifest (stripped), in manifest order."""
        return tuple(self._items)

    def captions_for(self, image_path: str) -> list[TextItem]:
        """The captions of the image at ``image_path`` (absolute), in manifest order; empty when none match."""
        keys = self._keys_for(image_path)
        if len(keys) == 1:
            return list(self._items[keys[0]])
        seen: dict[str, TextItem] = {}
        for key in keys:
            for item in self._items[key]:
                seen.setdefault(item.text, item)
        return list(seen.values())

    def unmatched(self, image_paths: Iterable[str]) -> list[str]:
        """The keys, in manifest order, that match none of ``image_paths``: what an ingest should warn about."""
        matched: set[str] = set()
        for image_path in image_paths:
            matched.update(self._keys_for(image_path))
        return [key for key in self._items if key not in matched]

    def _keys_for(self, image_path: str) -> tuple[str, ...]:
        path = os.path.normpath(image_path if os.path.isabs(image_path) else os.path.abspath(image_path))
        keys = self._by_path.get(path, ())
        by_name = self._by_name.get(os.path.basename(path))
        if by_name is not None and by_name not in keys:
            keys = (*keys, by_name)
        return keys


def load_manifest(path: str | os.PathLike[str], base: str | None = None) -> CaptionManifest:
    """Read a caption manifest; ``base`` is the folder being ingested, against which relative keys also resolve.

    Raises :class:`ManifestError` naming the file and the line or record when it is missing, unreadable, of an
    unknown format or malformed.
    """
    label = os.fspath(path)
    file = Path(label).expanduser()
    suffix = file.suffix.lower()
    if suffix not in _PARSERS:
        raise ManifestError(
            f"caption manifest {label}: unknown format {suffix or '(no extension)'!r}; "
            f"use {', '.join(MANIFEST_SUFFIXES)}"
        )
    try:
        size = file.stat().st_size
        if file.is_dir():
            raise ManifestError(f"caption manifest {label} is a folder, not a file")
        if size > MAX_MANIFEST_BYTES:
            limit = MAX_MANIFEST_BYTES >> 20
            raise ManifestError(f"caption manifest {label} is {size:,} bytes, over the {limit} MiB limit")
        data = file.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"caption manifest {label} not found") from None
    except OSError as exc:
        raise ManifestError(f"cannot read caption manifest {label}: {exc.strerror or exc}") from exc
    entries = _PARSERS[suffix](decode_text(data), label)
    return CaptionManifest(str(file.resolve()), entries, base=base)


# ---- parsers: text and the label to put in errors -> captions by key, in order


def _add(entries: Entries, key: str, captions: Iterable[str]) -> None:
    entries.setdefault(key.strip(), []).extend(captions)


def _error(label: str, where: str, reason: str) -> ManifestError:
    return ManifestError(f"{label} {where}: {reason}")


def _parse_tsv(text: str, label: str) -> Entries:
    return _parse_rows(_tsv_rows(text), label, "\t")


def _parse_csv(text: str, label: str) -> Entries:
    return _parse_rows(_csv_rows(text, label), label, ",")


def _tsv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated lines; a field wholly in double quotes (as spreadsheet tools write) is unquoted."""
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, [_unquote(field) if '"' in field else field for field in line.rstrip("\r").split("\t")]


def _unquote(field: str) -> str:
    stripped = field.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return stripped[1:-1].replace('""', '"')
    return field


def _csv_rows(text: str, label: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # a stray quote is an error, not a merge
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _error(label, f"line {start}", f"malformed CSV ({exc})") from None
        yield start, row
        start = reader.line_num + 1


def _parse_rows(rows: Iterable[tuple[int, list[str]]], label: str, delimiter: str) -> Entries:
    entries: Entries = {}
    header: tuple[int, int, int] | None = None
    first = True
    for number, fields in rows:
        if not any(field.strip() for field in fields):
            continue
        where = f"line {number}"
        if first:
            first = False
            header = _header(fields, label, where)
            if header is not None:
                continue
        if header is None:  # no header: the first column is the path, the last the caption
            if len(fields) < 2:
                raise _error(label, where, "no caption column (expected the image path, a separator, the caption)")
            image, caption = fields[0], fields[-1]
        else:
            image_col, caption_col, width = header
            if len(fields) <= image_col:
                raise _error(label, where, "no image column")
            if len(fields) <= caption_col:
                raise _error(label, where, "no caption column")
            image, caption = fields[image_col], fields[caption_col]
            if caption_col == width - 1 and len(fields) > width:  # a last-column caption holding the separator
                caption = delimiter.join(fields[caption_col:])
        if not image.strip():
            raise _error(label, where, "empty image path")
        _add(entries, image, [caption])
    return entries


def _header(fields: list[str], label: str, where: str) -> tuple[int, int, int] | None:
    """(image column, caption column, number of columns) when ``fields`` is a header row, ``None`` for data."""
    names = [field.strip().lower() for field in fields]
    image = next((names.index(name) for name in IMAGE_COLUMNS if name in names), None)
    caption = next((names.index(name) for name in CAPTION_COLUMNS if name in names), None)
    if image is None and caption is None:
        return None
    if image is None:
        raise _error(label, where, f"the header names no image column (one of {', '.join(IMAGE_COLUMNS)})")
    if caption is None:
        raise _error(label, where, f"the header names no caption column (one of {', '.join(CAPTION_COLUMNS)})")
    return image, caption, len(fields)


def _parse_jsonl(text: str, label: str) -> Entries:
    entries: Entries = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(label, where, f"invalid JSON ({exc.msg})") from None
        _add(entries, *_record(record, label, where))
    return entries


def _parse_json(text: str, label: str) -> Entries:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(label, f"line {exc.lineno}", f"invalid JSON ({exc.msg})") from None
    entries: Entries = {}
    if isinstance(document, dict) and isinstance(document.get("images"), list) and "annotations" in document:
        return _parse_coco(document, label)
    if isinstance(document, dict):
        for key, value in document.items():
            where = f"key {key!r}"
            if not key.strip():
                raise _error(label, where, "empty image path")
            _add(entries, key, _caption_list(value, label, where))
        return entries
    if isinstance(document, list):
        for index, record in enumerate(document):
            _add(entries, *_record(record, label, f"record [{index}]"))
        return entries
    raise _error(label, "top level", "expected a COCO object, a {path: caption} object or a list of objects")


def _parse_coco(document: dict[str, Any], label: str) -> Entries:
    files: dict[Any, str] = {}
    for index, image in enumerate(document["images"]):
        where = f"images[{index}]"
        if not isinstance(image, dict) or "id" not in image:
            raise _error(label, where, "expected an object with an id and a file_name")
        name = image.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise _error(label, where, "no file_name")
        if not isinstance(image["id"], (int, str)) or image["id"] in files:
            raise _error(label, where, f"duplicate or invalid id {image['id']!r}")
        files[image["id"]] = name
    annotations = document["annotations"]
    if not isinstance(annotations, list):
        raise _error(label, "annotations", "expected a list")
    entries: Entries = {}
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise _error(label, where, "expected an object with an image_id and a caption")
        image_id = annotation.get("image_id")
        if not isinstance(image_id, (int, str)) or image_id not in files:
            raise _error(label, where, f"unknown image_id {image_id!r}")
        caption = annotation.get("caption")
        if not isinstance(caption, str):
            raise _error(label, where, "no caption")
        _add(entries, files[image_id], [caption])
    return entries


def _record(record: Any, label: str, where: str) -> tuple[str, list[str]]:
    """(image key, captions) of one JSON object with an image key and a caption key."""
    if not isinstance(record, dict):
        raise _error(label, where, "expected a JSON object")
    lowered = {str(key).lower(): value for key, value in record.items()}
    image_key = next((name for name in IMAGE_COLUMNS if name in lowered), None)
    if image_key is None:
        raise _error(label, where, f"no image key (one of {', '.join(IMAGE_COLUMNS)})")
    image = lowered[image_key]
    if not isinstance(image, str) or not image.strip():
        raise _error(label, where, f"{image_key} must be a non-empty string")
    caption_key = next((name for name in CAPTION_COLUMNS if name in lowered), None)
    if caption_key is None:
        raise _error(label, where, f"no caption key (one of {', '.join(CAPTION_COLUMNS)})")
    return image, _caption_list(lowered[caption_key], label, where)


def _caption_list(value: Any, label: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise _error(label, where, "captions must be a string or a list of strings")


def _folder_prefixes(folder: str, roots: list[str]) -> tuple[str, ...]:
    """The absolute folders a key's folder names (from each root when relative; symbolic links resolved too),
    each ending with a separator so that a file name can be appended."""
    absolute = [folder] if os.path.isabs(folder) else [os.path.normpath(os.path.join(r, folder)) for r in roots]
    folders = [*absolute, *(os.path.realpath(candidate) for candidate in absolute)]
    return tuple(dict.fromkeys(f if f.endswith(os.sep) else f + os.sep for f in folders))


def _aliases(folder: str | None) -> list[str]:
    return [] if folder is None else [os.path.abspath(folder), os.path.realpath(folder)]


def _is_bare(key: str) -> bool:
    return "/" not in key and os.sep not in key and (os.altsep is None or os.altsep not in key)


_PARSERS = {".tsv": _parse_tsv, ".csv": _parse_csv, ".jsonl": _parse_jsonl, ".json": _parse_json}
