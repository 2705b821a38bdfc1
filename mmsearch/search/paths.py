"""Paths as the user typed them, made absolute once, on the client (the CLI, a script), before a search goes
anywhere: ``~`` expanded (also inside quotes, where no shell did it), relative paths resolved against the
current folder. The service then gets the same absolute paths a local search uses, so a search means the same
with and without ``mmsearch serve`` (whose current folder is its own)."""

from __future__ import annotations

import os
from pathlib import Path

from mmsearch.search.filters import GLOB_CHARS
from mmsearch.search.querylang import image_spans


def client_path(value: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> str:
    """``value`` absolute: ``~`` expanded, relative to ``cwd`` (default: the current folder), symbolic links
    resolved as ingest resolves the folders it stores."""
    path = Path(os.fspath(value)).expanduser()
    if not path.is_absolute():
        path = Path(cwd if cwd is not None else os.getcwd()) / path
    return str(path.resolve())


def path_filter(value: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """A ``--path`` filter made absolute. A folder or prefix: as :func:`client_path`. A glob: its folder part
    before the first wildcard is resolved the same way, unless it starts with a wildcard (``*.jpg``,
    ``*/beach/*``: those match anywhere, as they always did)."""
    expanded = os.path.expanduser(value)
    first = min((expanded.find(char) for char in GLOB_CHARS if char in expanded), default=-1)
    if first < 0:
        return client_path(expanded, cwd)
    if first == 0:
        return expanded
    head, sep, tail = expanded[:first].rpartition(os.sep)
    if not sep:  # a wildcard in the first component (``2019*``): relative to the folder itself
        return os.path.join(client_path(".", cwd), expanded)
    folder = client_path(head or os.sep, cwd)
    return folder.rstrip(os.sep) + os.sep + tail + expanded[first:]


def resolve_query_images(text: str, cwd: str | os.PathLike[str] | None = None) -> str:
    """The query text with each ``image:`` term's path made absolute (quoted), the rest left as typed."""
    pieces, last = [], 0
    for start, end, path in image_spans(text):
        absolute = client_path(path, cwd)
        quote = "'" if '"' in absolute else '"'
        pieces += [text[last:start], f"{quote}{absolute}{quote}"]
        last = end
    return "".join(pieces) + text[last:]
