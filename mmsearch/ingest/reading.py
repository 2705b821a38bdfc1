"""Reading image files for an ingest: the probe (hash and header, no decode), the whole bytes within limits, and a
decoding thread's whole work for one file (:func:`prepare_file`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image, UnidentifiedImageError

from mmsearch.captions.embedded import embedded_captions
from mmsearch.encoders.base import Encoder
from mmsearch.errors import UnreadableMediaError
from mmsearch.imageio import decode_image, hash_bytes
from mmsearch.ingest.audio import hash_file
from mmsearch.ingest.commit import Probe
from mmsearch.ingest.taken import taken_at
from mmsearch.reasons import EMPTY_FILE, FILE_TOO_LARGE, TOO_MANY_PIXELS, UNREADABLE, VANISHED

MAX_IMAGE_FILE_BYTES = 512 << 20
"""Image files over 512 MiB are refused (``file-too-large``) before they are read."""


def read_probe(path: str) -> Probe:
    """Hash the file (in chunks), read its pixel size and embedded captions from the header (no full decode)."""
    content_hash = hash_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            embedded = tuple(embedded_captions(image))
            taken = taken_at(image)
    except FileNotFoundError:
        raise UnreadableMediaError("cannot read file: it is gone (deleted during the run?)", VANISHED) from None
    except UnidentifiedImageError:
        raise UnreadableMediaError("not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableMediaError(f"decompression bomb: {exc}", TOO_MANY_PIXELS) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableMediaError(f"cannot read image header: {exc}") from exc
    return Probe(content_hash, width, height, embedded, taken)


def decode_whole(data: bytes, max_pixels: int, min_size: tuple[int, int] | None) -> tuple[Image.Image, Probe]:
    """Decode a whole file's bytes (:func:`mmsearch.imageio.decode_image`) and probe them: the hash, the size
    after orientation, and the captions and date of the header, read from the one parse the decode makes."""
    header = _HeaderNotes()
    image, (width, height) = decode_image(data, max_pixels, min_size, header)
    return image, Probe(hash_bytes(data), width, height, header.embedded, header.taken)


class _HeaderNotes:
    """Called with an opened, not yet decoded image: keeps its embedded captions and capture date."""

    embedded: tuple = ()
    taken: float | None = None

    def __call__(self, image: Image.Image) -> None:
        self.embedded = tuple(embedded_captions(image))
        self.taken = taken_at(image)


def file_signature(path: str) -> str:
    """Size and mtime of a file, to tell whether it changed since it was last applied."""
    try:
        stat = os.stat(path)
    except OSError:
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def read_whole(path: str, max_bytes: int) -> bytes:
    """The whole file (images are read once, to be hashed and decoded from the same bytes), within ``max_bytes``."""
    try:
        with open(path, "rb") as handle:
            data = _read_at_most(handle, max_bytes + 1)
    except FileNotFoundError:
        raise UnreadableMediaError("cannot read file: it is gone (deleted during the run?)", VANISHED) from None
    except OSError as exc:
        raise UnreadableMediaError(f"cannot read file: {exc.strerror or exc}", UNREADABLE) from exc
    if len(data) > max_bytes:
        raise UnreadableMediaError(f"image file is over the size limit of {max_bytes >> 20} MiB", FILE_TOO_LARGE)
    if not data:
        raise UnreadableMediaError("the file is empty (0 bytes)", EMPTY_FILE)
    return data


def _read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes of an open file. The first read is sized to the file (``fstat``): a read of ``limit``
    bytes allocates that much first (a fresh ``mmap`` of 512 MiB a photo, ~11 page faults and ~0.04 ms of CPU on a
    30 kB JPEG); a file that grew since, or one without a size (a pipe), is read on to ``limit``."""
    expected = os.fstat(handle.fileno()).st_size
    data = handle.read(min(expected + 1, limit))
    if len(data) > expected:
        data += handle.read(limit - len(data))
    return data


@dataclass(frozen=True)
class PreparedImage:
    """A decoded, model-ready image and the probe of exactly the bytes it was decoded from."""

    probe: Probe
    tensor: Any


def prepare_file(encoder: Encoder, path: str, max_file_bytes: int, max_pixels: int) -> PreparedImage:
    """A decoding thread's work for one image file: read it whole (within ``max_file_bytes``), hash and decode
    those bytes (header captions and date from the same parse), and prepare the model's pixels."""
    image, probe = decode_whole(read_whole(path, max_file_bytes), max_pixels, encoder.min_decode_size)
    return PreparedImage(probe, encoder.prepare_image(image))
