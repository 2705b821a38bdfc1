"""Reading images safely: size limits, EXIF orientation, first frame, RGB."""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageOps, UnidentifiedImageError

from mmsearch.errors import UnreadableMediaError


def hash_bytes(data: bytes) -> str:
    """Hex BLAKE2b-256 of ``data``: the content key that lets renamed and duplicate files share a vector."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def load_image(source: str | bytes, max_pixels: int) -> Image.Image:
    """Decode an image fully: first frame, EXIF orientation applied, RGB.

    Raises :class:`UnreadableMediaError` with a one-line reason for anything
    that is not a readable image within ``max_pixels``.
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
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return image.convert("RGB")
        except UnreadableMediaError:
            raise
        except UnidentifiedImageError:
            raise UnreadableMediaError("not an image Pillow can read") from None
        except Image.DecompressionBombError as exc:
            raise UnreadableMediaError(f"decompression bomb: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise UnreadableMediaError(f"cannot decode image: {exc}") from exc
