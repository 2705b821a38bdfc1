"""The folder of a keyword index on disk: built beside the live one, copied by hard links, swapped in whole.

Tantivy never changes a segment file once written (a commit writes new files and replaces ``meta.json`` by a
rename), so a copy made of hard links is a private, writable copy of the index that costs no bytes: a writer
changes it while readers keep the live folder, and a rename puts it in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STAMP_FILE = "stamp.json"


class FolderMoved(Exception):
    """The index folder was missing, or replaced while it was being copied."""


@contextlib.contextmanager
def building_folder(target: Path) -> Iterator[Path]:
    """A new folder beside ``target``, removed afterwards unless it was swapped in (see :func:`swap_in`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield building
    finally:
        shutil.rmtree(building, ignore_errors=True)  # a no-op once it was renamed into place


def link_copy(source: Path, target: Path) -> dict[str, Any]:
    """Hard-link every file of the folder ``source`` into ``target`` (all from the same folder, even if ``source``
    is renamed meanwhile); returns the stamp as read from ``target``. Raises FolderMoved when there is no folder."""
    if os.link not in os.supports_dir_fd or not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - not on Linux
        raise FolderMoved("no linkat here: the caller rebuilds instead")
    try:
        handle = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise FolderMoved from exc
    try:
        for name in os.listdir(handle):
            if name.startswith(".tantivy-") and name.endswith(".lock"):
                continue  # the lock files of a writer or reader of the old folder
            try:
                os.link(name, target / name, src_dir_fd=handle)
            except OSError as exc:  # removed meanwhile: the folder was swapped out and cleared
                raise FolderMoved from exc
    finally:
        os.close(handle)
    try:
        stamp = json.loads((target / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def swap_in(built: Path, target: Path) -> None:
    """Put the folder ``built`` at ``target``: one rename when there is none yet, else the old one is renamed
    away first (a reader that opened it keeps its files) and removed. When another process swaps its own build in
    at the same moment, one of the two equivalent builds wins and the other is dropped."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(target, old)
    try:
        os.replace(built, target)
    except OSError:  # another build took the name first
        shutil.rmtree(built, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
