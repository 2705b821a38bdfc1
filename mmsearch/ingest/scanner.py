"""Walk a folder and list the media files mmsearch can ingest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class ScannedFile:
    """A file found on disk with the stat facts used to detect changes."""

    path: str
    kind: str
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[ScannedFile]
    errors: list[tuple[str, str]]


def media_kind(path: str) -> str | None:
    """``"image"`` for supported image extensions, else ``None``."""
    return "image" if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS else None


def scan_folder(root: Path) -> ScanResult:
    """Every supported media file under ``root`` (recursively, hidden folders skipped), sorted by path."""
    files: list[ScannedFile] = []
    errors: list[tuple[str, str]] = []
    for entry in _walk(str(root), errors):
        kind = media_kind(entry.name)
        if kind is None:
            continue
        try:
            stat = entry.stat()
        except OSError as exc:
            errors.append((entry.path, f"cannot stat: {exc.strerror or exc}"))
            continue
        files.append(ScannedFile(entry.path, kind, stat.st_size, stat.st_mtime_ns))
    files.sort(key=lambda f: f.path)
    return ScanResult(files, errors)


def _walk(folder: str, errors: list[tuple[str, str]]) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            children = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        errors.append((folder, f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in children:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, errors)
            elif entry.is_file():
                yield entry
        except OSError as exc:
            errors.append((entry.path, f"cannot read: {exc.strerror or exc}"))
