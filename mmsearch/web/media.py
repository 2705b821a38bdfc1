"""Opening an indexed file to serve it: regular files only, never blocking (a FIFO put in a file's place).

Media are served by asset id (the path comes from the database, never from the request) with HTTP Range
support, so audio and video can seek; see :func:`media_response`.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from typing import BinaryIO

from starlette.responses import FileResponse

from mmsearch.assets import Asset
from mmsearch.errors import UnreadableMediaError

_EXTRA_TYPES = {
    ".wav": "audio/wav",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".webp": "image/webp",
}


def open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file, without ever blocking; else UnreadableMediaError."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UnreadableMediaError(f"cannot open the file: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UnreadableMediaError("not a regular file")
    return os.fdopen(descriptor, "rb")


def media_type(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def media_response(asset: Asset) -> FileResponse:
    """The asset's file, answering Range requests (206) as Starlette's FileResponse does."""
    with open_regular(asset.path) as handle:
        facts = os.fstat(handle.fileno())
    return FileResponse(
        asset.path,
        media_type=media_type(asset.path),
        stat_result=facts,
        headers={"Cache-Control": "private, max-age=3600"},
        content_disposition_type="inline",
    )
