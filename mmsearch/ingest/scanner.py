"""Walk a folder and list the media files mmsearch can ingest, with their sidecar files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmsearch import reasons
from mmsearch.audio.subtitles import transcript_sidecar
from mmsearch.captions.sidecar import caption_sidecar_names
from mmsearch.imageformats import BASE_IMAGE_EXTENSIONS
from mmsearch.ingest.classify import FILE, FOLDER, classify, media_kind, media_kinds, unsupported
from mmsearch.ingest.report import FailedFile, IgnoredFile
from mmsearch.kinds import AUDIO, IMAGE
from mmsearch.pathnames import UnrepresentableNameError, to_stored

IMAGE_EXTENSIONS = BASE_IMAGE_EXTENSIONS
"""Images every install reads; :func:`media_kind` also knows AVIF and HEIC/HEIF where they can be decoded."""


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
        return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()


@dataclass
class ScanResult:
    """The media files found, the entries that could not be examined, and those passed over with a reason."""

    files: list[ScannedFile]
    errors: list[FailedFile] = field(default_factory=list)
    ignored: list[IgnoredFile] = field(default_factory=list)


__all__ = ["AUDIO", "IMAGE", "IMAGE_EXTENSIONS", "ScanResult", "ScannedFile", "Sidecar", "media_kind", "scan_folder"]


def scan_folder(root: Path) -> ScanResult:
    """Every supported media file under ``root`` (recursively, hidden files and folders skipped), sorted by path;
    every other visible entry is reported in ``ignored`` with its reason class (sidecars in use excepted)."""
    result = ScanResult([])
    kind_of = media_kinds()  # once per scan: a lookup per file
    for folder, entries in _walk(str(root), str(root), result):
        by_name = {entry.name: entry for entry in entries}
        captions = caption_sidecar_names(by_name)  # once per folder: a lookup per image
        kinds = [kind_of.get(os.path.splitext(entry.name)[1].lower()) for entry in entries]
        used: set[str] = set()
        for entry, kind in zip(entries, kinds, strict=True):
            if kind is None:
                continue
            try:
                to_stored(entry.path)
                stat = entry.stat()
            except UnrepresentableNameError as exc:
                result.errors.append(FailedFile(entry.path, str(exc), reasons.BAD_NAME))
                continue
            except OSError as exc:
                result.errors.append(_failure(entry.path, "cannot stat", exc))
                continue
            sidecars = _sidecars(folder, entry, kind, by_name, captions, result.errors)
            used.update(os.path.basename(sidecar.path) for sidecar in sidecars)
            result.files.append(ScannedFile(entry.path, kind, stat.st_size, stat.st_mtime_ns, sidecars))
        for entry, kind in zip(entries, kinds, strict=True):
            if kind is None and entry.name not in used:
                skip = unsupported(entry.name)
                result.ignored.append(IgnoredFile(entry.path, skip.code, skip.detail))
    result.files.sort(key=lambda f: f.path)
    result.ignored.sort(key=lambda item: item.path)
    return result


def _failure(path: str, what: str, exc: OSError) -> FailedFile:
    code = reasons.VANISHED if isinstance(exc, FileNotFoundError) else reasons.UNREADABLE
    return FailedFile(path, f"{what}: {exc.strerror or exc}", code)


def _sidecars(
    folder: str,
    entry: os.DirEntry[str],
    kind: str,
    by_name: dict[str, os.DirEntry[str]],
    captions: dict[str, list[str]],
    errors: list[FailedFile],
) -> tuple[Sidecar, ...]:
    if kind == IMAGE:  # as caption_sidecars(entry.path, by_name.keys()), from the folder's sidecars by stem
        stem = os.path.splitext(entry.name)[0]
        paths = [os.path.join(folder, name) for name in captions.get(stem, ()) if name != entry.name]
    else:
        found = transcript_sidecar(entry.path, by_name.keys())
        paths = [found] if found else []
    if not paths:
        return ()
    sidecars = []
    for sidecar_path in paths:
        try:
            to_stored(sidecar_path)
            stat = by_name[os.path.basename(sidecar_path)].stat()
        except UnrepresentableNameError as exc:
            errors.append(FailedFile(sidecar_path, str(exc), reasons.BAD_NAME))
            continue
        except OSError as exc:
            errors.append(_failure(sidecar_path, "cannot stat", exc))
            continue
        sidecars.append(Sidecar(os.path.join(folder, os.path.basename(sidecar_path)), stat.st_size, stat.st_mtime_ns))
    return tuple(sidecars)


def _walk(folder: str, root: str, result: ScanResult) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """Yield (folder, its visible regular files, links to files included) for ``folder`` and every visible
    subfolder; every other entry goes to ``result.ignored`` (or ``result.errors`` when it cannot be examined)."""
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        result.errors.append(_failure(folder, "cannot list folder", exc))
        return
    files: list[os.DirEntry[str]] = []
    subfolders: list[str] = []
    for entry in children:
        if entry.name.startswith("."):
            continue
        try:
            found = classify(entry, root)
        except OSError as exc:
            result.errors.append(_failure(entry.path, "cannot read", exc))
            continue
        if found.what == FOLDER:
            subfolders.append(entry.path)
        elif found.what == FILE:
            files.append(entry)
        else:
            result.ignored.append(IgnoredFile(entry.path, found.code, found.detail))
    yield folder, files
    for subfolder in subfolders:
        yield from _walk(subfolder, root, result)
