"""Query images sent over HTTP: checked before any decoding work, then handed to the engine as a private file.

Over HTTP an image query is an upload (or an asset id, see :mod:`.routes`), never a path on the server. An
upload must be a picture Pillow recognises from its header, within the pixel limit and an aspect ratio the
model's resize cannot blow up (a 30000x1 PNG would be scaled to 6.7 million by 224 pixels).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mmsearch.errors import MmsearchError

MAX_ASPECT = 20.0
"""The longest side may be at most this many times the shortest."""


class UploadError(MmsearchError):
    """An uploaded query image that is refused (not an image, too big, an extreme shape)."""

    exit_code = 2


def check_image(data: bytes, max_pixels: int) -> str:
    """The format of an uploaded image (``JPEG``, ``PNG``...) after checking its header; raises UploadError."""
    if not data:
        raise UploadError("the uploaded image is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height, kind = image.width, image.height, image.format or "image"
    except Image.DecompressionBombError:
        raise UploadError(f"the uploaded image has more pixels than the limit of {max_pixels:,}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise UploadError("the upload is not an image Pillow can read") from None
    if width < 1 or height < 1:
        raise UploadError("the uploaded image has no pixels")
    if width * height > max_pixels:
        raise UploadError(f"the uploaded image is {width}x{height} pixels, over the limit of {max_pixels:,}")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise UploadError(f"the uploaded image is {width}x{height}: sides more than {MAX_ASPECT:g} to 1 are refused")
    return kind


@contextmanager
def private_copy(data: bytes, folder: Path) -> Iterator[str]:
    """``data`` in a file only this process's user can read, removed afterwards; yields its path."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, path = tempfile.mkstemp(dir=folder, prefix="query-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        yield path
    finally:
        Path(path).unlink(missing_ok=True)
