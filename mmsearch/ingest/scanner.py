"""Walk a folder and list the media files mmsearch can ingest, with their sidecar files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmsearch.audio.probe import AUDIO_EXTENSIONS
from mmsearch.audio.subtitles import transcript_sidecar
from mmsearch.captions.sidecar import caption_sidecars
from mmsearch.kinds import AUDIO, IMAGE

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Sidecar:
    """A companion file (caption or subtitles) with the stat facts used to detect changes."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScannedFile:
    """A media file found on disk with the stat facts used to detect changes, and its sidecars."""

    path: str
    kind: str
    size: int
    mtime_ns: int
    sidecars: tuple[Sidecar, ...] = ()

    @property
    def sidecar_sig(self) -> str | None:
        """A short hash of the sidecars' names, sizes and mtimes; ``None`` when there are none."""
        if not self.sidecars:
            return None
        text = "\n".join(f"{s.path}\0{s.size}\0{s.mtime_ns}" for s in self.sidecars)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class ScanResult:
    files: list[ScannedFile]
    errors: list[tuple[str, str]]


def media_kind(path: str) -> str | None:
    """``"image"`` or ``"audio"`` by extension, else ``None``."""
    extension = os.path.splitext(path)[1].lower()
    if extension in IMAGE_EXTENSIONS:
        return IMAGE
    if extension in AUDIO_EXTENSIONS:
        return AUDIO
    return None


def scan_folder(root: Path) -> ScanResult:
    """Every supported media file under ``root`` (recursively, hidden files and folders skipped), sorted by path."""
    files: list[ScannedFile] = []
    errors: list[tuple[str, str]] = []
    for folder, entries in _walk(str(root), errors):
        by_name = {entry.name: entry for entry in entries}
        for entry in entries:
            kind = media_kind(entry.name)
            if kind is None:
                continue
            try:
                stat = entry.stat()
            except OSError as exc:
                errors.append((entry.path, f"cannot stat: {exc.strerror or exc}"))
                continue
            sidecars = _sidecars(folder, entry.path, kind, by_name, errors)
            files.append(ScannedFile(entry.path, kind, stat.st_size, stat.st_mtime_ns, sidecars))
    files.sort(key=lambda f: f.path)
    return ScanResult(files, errors)


def _sidecars(
    folder: str, path: str, kind: str, by_name: dict[str, os.DirEntry[str]], errors: list[tuple[str, str]]
) -> tuple[Sidecar, ...]:
    if kind == IMAGE:
        paths = caption_sidecars(path, by_name.keys())
    else:
        found = transcript_sidecar(path, by_name.keys())
        paths = [found] if found else []
    sidecars = []
    for sidecar_path in paths:
        try:
            stat = by_name[os.path.basename(sidecar_path)].stat()
        except (OSError, KeyError) as exc:
            errors.append((sidecar_path, f"cannot stat: {getattr(exc, 'strerror', None) or exc}"))
            continue
        sidecars.append(Sidecar(os.path.join(folder, os.path.basename(sidecar_path)), stat.st_size, stat.st_mtime_ns))
    return tuple(sidecars)


def _walk(folder: str, errors: list[tuple[str, str]]) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """Yield (folder, its visible plain files) for ``folder`` and every visible subfolder."""
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        errors.append((folder, f"cannot list folder: {exc.strerror or exc}"))
        return
    files: list[os.DirEntry[str]] = []
    subfolders: list[str] = []
    for entry in children:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            elif entry.is_file():
                files.append(entry)
        except OSError as exc:
            errors.append((entry.path, f"cannot read: {exc.strerror or exc}"))
    yield folder, files
    for subfolder in subfolders:
        yield from _walk(subfolder, errors)
