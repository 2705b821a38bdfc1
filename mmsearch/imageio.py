"""Reading images safely: size limits, EXIF orientation, first frame, RGB."""

from __future__ import annotations

import hashlib
import io

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mmsearch.errors import UnreadableMediaError


def hash_bytes(data: bytes) -> str:
    """Hex BLAKE2b-256 of ``data``: the content key that lets renamed and duplicate files share a vector."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def load_image(source: str | bytes, max_pixels: int, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image fully: first frame, EXIF orientation applied, RGB (see :func:`decode_image`)."""
    return decode_image(source, max_pixels, min_size)[0]


def decode_image(
    source: str | bytes, max_pixels: int, min_size: tuple[int, int] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image: first frame, EXIF orientation applied, RGB; and its full (width, height) after orientation.

    With ``min_size`` a JPEG is decoded at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``, done inside libjpeg, about
    twice as fast) as long as both sides stay >= ``min_size``; give a square ``min_size`` so the bound holds in
    either orientation. Raises :class:`UnreadableMediaError` with a one-line reason for anything that is not a
    readable image within ``max_pixels``.
    """
    label = source if isinstance(source, str) else "<bytes>"
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UnreadableMediaError(f"cannot open {label}: {exc.strerror or exc}") from exc
    with handle:
        try:
            image = Image.open(handle)
            width, height = image.size
            if width * height > max_pixels:
                raise UnreadableMediaError(
                    f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (decompression bomb guard)"
                )
            image.seek(0)
            if min_size is not None:
                image.draft("RGB", min_size)  # a no-op for anything but JPEG
            image.load()
            if image.getexif().get(ExifTags.Base.Orientation, 1) in _SWAPS_SIDES:
                width, height = height, width
            upright = ImageOps.exif_transpose(image) or image
            return upright.convert("RGB"), (width, height)
        except UnreadableMediaError:
            raise
        except UnidentifiedImageError:
            raise UnreadableMediaError("not an image Pillow can read") from None
        except Image.DecompressionBombError as exc:
            raise UnreadableMediaError(f"decompression bomb: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise UnreadableMediaError(f"cannot decode image: {exc}") from exc


_SWAPS_SIDES = (5, 6, 7, 8)
"""EXIF orientations that turn the picture a quarter (transpose, rotate 90/270, transverse)."""
