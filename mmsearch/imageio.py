"""Reading images safely: size limits, EXIF orientation, first frame, RGB."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mmsearch.errors import UnreadableMediaError
from mmsearch.imageformats import heif_available
from mmsearch.reasons import EXTREME_ASPECT, TOO_MANY_PIXELS

MAX_ASPECT = 100
"""The longest side may be at most this many times the shortest. Models resize the short side to their input
size (224 px, say), so a 30000x1 image would become 6,720,000x224 pixels (4.5 GB as RGB) before the crop; at
100:1 that step stays under 16 MB. Panoramas reach about 10:1."""
MAX_DECODED_BYTES = 512 << 20
"""The largest decoded pixel buffer (width x height x bytes per pixel of its mode) an image may need: with the
default pixel limit, 16-bit and 4-channel images stay within it; anything larger is refused before decoding."""
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16L": 2, "I;16B": 2, "RGB": 3}


def check_size(width: int, height: int, mode: str, max_pixels: int) -> None:
    """Refuse, before anything is decoded, an image whose pixels, side ratio or decoded buffer are over the
    limits (``max_pixels``, :data:`MAX_ASPECT`, :data:`MAX_DECODED_BYTES`): :class:`UnreadableMediaError`."""
    pixels = width * height
    if pixels > max_pixels:
        raise UnreadableMediaError(
            f"image is {width}x{height} = {pixels:,} pixels, over the limit of {max_pixels:,} "
            "(decompression bomb guard)",
            TOO_MANY_PIXELS,
        )
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT * min(width, height):
        raise UnreadableMediaError(
            f"image is {width}x{height}: sides more than {MAX_ASPECT} times apart (the model's resize would need "
            "too much memory)",
            EXTREME_ASPECT,
        )
    decoded = pixels * _BYTES_PER_PIXEL.get(mode, 4)
    if decoded > MAX_DECODED_BYTES:
        raise UnreadableMediaError(
            f"image is {width}x{height} in mode {mode}: {decoded >> 20} MiB decoded, over the limit of "
            f"{MAX_DECODED_BYTES >> 20} MiB",
            TOO_MANY_PIXELS,
        )


class _PixelBlockCache:
    """Pillow's block cache size (``PILLOW_BLOCKS_MAX``) is one setting per process: the runs that raised it, and
    what it was before the first of them, so that overlapping runs (two engines' ingests in one process) leave it
    as they found it whatever order they end in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted: list[int] = []
        self._before = 0

    @contextmanager
    def raised(self, blocks: int) -> Iterator[None]:
        core = Image.core
        with self._lock:
            if not self._wanted:
                self._before = core.get_blocks_max()
            self._wanted.append(blocks)
            core.set_blocks_max(max([self._before, *self._wanted]))
        try:
            yield
        finally:
            with self._lock:
                self._wanted.remove(blocks)
                core.set_blocks_max(max([self._before, *self._wanted]))  # frees the blocks over the new limit


_pixel_blocks = _PixelBlockCache()


def reused_pixel_blocks(blocks: int) -> AbstractContextManager[None]:
    """Let Pillow keep up to ``blocks`` freed pixel blocks for the next images while a run decodes many
    (Pillow's ``PILLOW_BLOCKS_MAX``; its default keeps none, so each decode maps fresh pages from the system:
    ~7 page faults and ~0.05 ms of system CPU a DEV photo). A cached block is at most the size of one that was
    in use a moment before. While runs overlap the largest of their sizes holds; when the last one ends the
    setting is restored and the cache emptied."""
    return _pixel_blocks.raised(blocks)


def hash_bytes(data: bytes) -> str:
    """Hex BLAKE2b-256 of ``data``: the content key that lets renamed and duplicate files share a vector."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def load_image(source: str | bytes, max_pixels: int, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image fully: first frame, EXIF orientation applied, RGB (see :func:`decode_image`)."""
    return decode_image(source, max_pixels, min_size)[0]


def decode_image(
    source: str | bytes,
    max_pixels: int,
    min_size: tuple[int, int] | None = None,
    header: Callable[[Image.Image], None] | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image: first frame, EXIF orientation applied, RGB; and its full (width, height) after orientation.

    With ``min_size`` a JPEG is decoded at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``, done inside libjpeg, about
    twice as fast) as long as both sides stay >= ``min_size``; give a square ``min_size`` so the bound holds in
    either orientation. ``header`` is called with the opened image once its size passed the limits and before
    anything is decoded (its parsed header only, as a fresh ``Image.open`` gives it): the ingest reads captions
    and dates there instead of opening and parsing the file a second time. Raises :class:`UnreadableMediaError`
    with a one-line reason for anything that is not a readable image within ``max_pixels``.
    """
    label = source if isinstance(source, str) else "<bytes>"
    heif_available()  # registers the HEIC/HEIF opener when pillow-heif is installed
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UnreadableMediaError(f"cannot open {label}: {exc.strerror or exc}") from exc
    with handle:
        try:
            image = Image.open(handle)
            width, height = image.size
            check_size(width, height, image.mode, max_pixels)
            if header is not None:
                header(image)
            image.seek(0)
            if min_size is not None:
                image.draft("RGB", min_size)  # a no-op for anything but JPEG
            image.load()
            if image.getexif().get(ExifTags.Base.Orientation, 1) in _SWAPS_SIDES:
                width, height = height, width
            ImageOps.exif_transpose(image, in_place=True)  # no copy when there is nothing to turn
            return (image if image.mode == "RGB" else image.convert("RGB")), (width, height)
        except UnreadableMediaError:
            raise
        except UnidentifiedImageError:
            raise UnreadableMediaError("not an image Pillow can read") from None
        except Image.DecompressionBombError as exc:
            raise UnreadableMediaError(f"decompression bomb: {exc}", TOO_MANY_PIXELS) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise UnreadableMediaError(f"cannot decode image: {exc}") from exc


_SWAPS_SIDES = (5, 6, 7, 8)
"""EXIF orientations that turn the picture a quarter (transpose, rotate 90/270, transverse)."""
