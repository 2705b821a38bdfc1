"""What a folder entry is, for the scanner: a file to look at, a folder to walk, or something passed over on
purpose with its reason class (:mod:`mmsearch.reasons`).

Links to files are followed wherever they lead (the link's path is what gets indexed). Links to folders are never
followed: the folder is either inside the ingested one (walked under its real path already), a loop, or outside.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
from dataclasses import dataclass

from mmsearch import reasons
from mmsearch.audio.probe import AUDIO_EXTENSIONS
from mmsearch.imageformats import image_extensions, missing_plugin_hint
from mmsearch.kinds import AUDIO, IMAGE, VIDEO
from mmsearch.video import VIDEO_EXTENSIONS

FILE = "file"
FOLDER = "folder"
SKIP = "skip"

_VIDEO = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".wmv", ".mts", ".m2ts", ".3gp", ".mpg", ".mpeg"})
_RAW = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf", ".srw", ".pef", ".raw", ".x3f"})


@dataclass(frozen=True)
class Entry:
    """A classified folder entry: ``what`` is FILE, FOLDER or SKIP; a skip has its reason ``code`` and ``detail``."""

    what: str
    code: str = ""
    detail: str = ""


def media_kind(path: str) -> str | None:
    """``"image"``, ``"audio"`` or ``"video"`` by suffix (those this environment can read), else ``None``."""
    extension = os.path.splitext(path)[1].lower()
    if extension in image_extensions():
        return IMAGE
    if extension in AUDIO_EXTENSIONS:
        return AUDIO
    if extension in VIDEO_EXTENSIONS:
        return VIDEO
    return None


def media_kinds() -> dict[str, str]:
    """:func:`media_kind` as a table: lower-case suffix (with the dot) -> kind, for a scan's many lookups."""
    table = dict.fromkeys(VIDEO_EXTENSIONS, VIDEO)
    table.update(dict.fromkeys(AUDIO_EXTENSIONS, AUDIO))
    table.update(dict.fromkeys(image_extensions(), IMAGE))
    return table


def unsupported(path: str) -> Entry:
    """Why a file of an unknown suffix is passed over (an image format that needs a plugin says which)."""
    extension = os.path.splitext(path)[1].lower()
    hint = missing_plugin_hint(extension)
    if hint is not None:
        return Entry(SKIP, reasons.NEEDS_PLUGIN, hint)
    if extension in _VIDEO:
        detail = "video format not indexed (mp4, mov, m4v, mkv, webm, avi and 3gp are)"
    elif extension in _RAW:
        detail = "camera RAW (not decoded; index a JPEG export)"
    else:
        detail = f"unsupported suffix {extension or '(none)'}"
    return Entry(SKIP, reasons.UNSUPPORTED_TYPE, detail)


def classify(entry: os.DirEntry[str], root: str) -> Entry:
    """A regular file, a folder to walk, or a skip with its reason. Raises OSError when the entry cannot be
    examined at all (the scanner reports it as unreadable)."""
    if not entry.is_symlink():
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat_module.S_ISDIR(mode):
            return Entry(FOLDER)
        if stat_module.S_ISREG(mode):
            return Entry(FILE)
        return Entry(SKIP, reasons.NOT_A_REGULAR_FILE, _file_type(mode))
    try:
        mode = os.stat(entry.path).st_mode
    except FileNotFoundError:
        return Entry(SKIP, reasons.BROKEN_SYMLINK, f"link to {os.readlink(entry.path)}, which does not exist")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Entry(SKIP, reasons.SYMLINK_LOOP, "the link leads back to itself")
        raise
    if stat_module.S_ISREG(mode):
        return Entry(FILE)
    if not stat_module.S_ISDIR(mode):
        return Entry(SKIP, reasons.NOT_A_REGULAR_FILE, "link to a " + _file_type(mode))
    target = os.path.realpath(entry.path)
    folder = os.path.realpath(os.path.dirname(entry.path))
    if _within(folder, target):
        return Entry(SKIP, reasons.SYMLINK_LOOP, f"link to {target}, a folder above it")
    if not _within(target, os.path.realpath(root)):
        return Entry(SKIP, reasons.SYMLINK_OUTSIDE, f"link to {target}, outside the folder (not followed)")
    return Entry(SKIP, reasons.SYMLINKED_FOLDER, f"link to {target}, indexed under that path")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _file_type(mode: int) -> str:
    if stat_module.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat_module.S_ISSOCK(mode):
        return "socket"
    if stat_module.S_ISCHR(mode) or stat_module.S_ISBLK(mode):
        return "device file"
    return "special file"
