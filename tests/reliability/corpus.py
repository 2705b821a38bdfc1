"""A generated corpus of hostile inputs, each with the outcome an ingest must give it.

``build_corpus(root)`` writes the files under ``root / "library"`` (and a folder outside it for links to point
at) and returns the table: per path, ``INDEXED``, or ``("failed", reason class)``, or ``("ignored", reason
class)`` (the classes of :mod:`mmsearch.reasons`). Sidecar outcomes are listed under the sidecar's own path.
"""

from __future__ import annotations

import io
import os
import struct
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mmsearch import reasons
from mmsearch.imageformats import avif_available, heif_available
from tests.conftest import make_image

INDEXED = ("indexed", "")


@dataclass(frozen=True)
class Case:
    path: str
    outcome: tuple[str, str]
    what: str


def failed(code: str) -> tuple[str, str]:
    return ("failed", code)


def ignored(code: str) -> tuple[str, str]:
    return ("ignored", code)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A valid PNG signature and header of any size with a one-byte IDAT: tiny on disk (a "bomb")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )


def bad_exif_jpeg(path: Path) -> None:
    """A JPEG whose EXIF block points past its end: Pillow warns "Tag data larger than file"."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 270, 2, 100, 0xFFF0)
    Image.new("RGB", (40, 30), "orange").save(path, exif=b"Exif\x00\x00" + tiff + struct.pack("<I", 0))


def write_wav(path: Path, seconds: float = 0.5, silent: bool = False) -> None:
    rate = 16_000
    samples = np.zeros(int(rate * seconds), dtype=np.int16)
    if not silent:
        samples = (np.sin(np.arange(samples.size) * 0.05) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())


SRT = "1\n00:00:00,000 --> 00:00:00,400\na short hostile recording\n"


def build_corpus(root: Path) -> tuple[Path, list[Case]]:
    lib = root / "library"
    outside = root / "outside"
    lib.mkdir(parents=True)
    outside.mkdir()
    make_image(outside / "elsewhere.jpg", 99)
    cases: list[Case] = []

    def add(name: str | bytes, outcome: tuple[str, str], what: str) -> Path:
        raw = os.path.join(os.fsencode(lib), name if isinstance(name, bytes) else os.fsencode(name))
        cases.append(Case(os.fsdecode(raw), outcome, what))
        return Path(os.fsdecode(raw))

    _images(lib, add)
    _links_and_specials(lib, outside, add)
    _sidecars_and_audio(lib, add)
    return lib, cases


def _images(lib: Path, add) -> None:
    make_image(add("ok.jpg", INDEXED, "a plain JPEG"), 1)
    rgb = Image.fromarray(np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    rgb.convert("CMYK").save(add("cmyk.jpg", INDEXED, "CMYK JPEG"))
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(
        add("sixteen.png", INDEXED, "16-bit grey PNG")
    )
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(
        add("palette.png", INDEXED, "palette PNG with transparency"), transparency=0
    )
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(add("animated.gif", INDEXED, "animated GIF"), save_all=True, append_images=frames[1:])
    frames[0].save(add("animated.png", INDEXED, "animated PNG (APNG)"), save_all=True, append_images=frames[1:])
    rgb.convert("RGBA").save(add("alpha.webp", INDEXED, "RGBA WebP"))
    make_image(add(b"bad_\xff\xfe.jpg", INDEXED, "name not valid UTF-8"), 3)
    make_image(add("n" * 240 + ".jpg", INDEXED, "244-byte name"), 4)
    bad_exif_jpeg(add("bad_exif.jpg", INDEXED, "corrupt EXIF (decoder warning)"))
    make_image(add("panorama.jpg", INDEXED, "20:1 panorama"), 5, size=(2000, 100))
    buffer = io.BytesIO()
    make_image(lib / "_tmp.png", 6)
    (lib / "_tmp.png").rename(add("png_named.jpg", INDEXED, "a PNG named .jpg"))
    png_header_only(add("wide.png", failed(reasons.EXTREME_ASPECT), "30000x1 PNG"), 30_000, 1)
    png_header_only(add("tall.png", failed(reasons.EXTREME_ASPECT), "1x100000 PNG"), 1, 100_000)
    png_header_only(add("bomb.png", failed(reasons.TOO_MANY_PIXELS), "20000x20000 PNG, 60 bytes"), 20_000, 20_000)
    big = add("big.png", failed(reasons.TOO_MANY_PIXELS), "10000x10000 PNG (over the limit, under Pillow's)")
    png_header_only(big, 10_000, 10_000)
    make_image(lib / "_whole.jpg", 7, size=(400, 300))
    data = (lib / "_whole.jpg").read_bytes()
    (lib / "_whole.jpg").unlink()
    add("truncated.jpg", failed(reasons.DECODE_ERROR), "JPEG cut in half").write_bytes(data[: len(data) // 2])
    add("zero.jpg", failed(reasons.EMPTY_FILE), "0-byte JPEG").write_bytes(b"")
    add("text.jpg", failed(reasons.DECODE_ERROR), "text named .jpg").write_text("hello, not an image\n")
    add("garbage.png", failed(reasons.DECODE_ERROR), "random bytes named .png").write_bytes(
        np.random.default_rng(8).bytes(4096)
    )
    Image.new("RGB", (40, 40), "grey").save(buffer, "TIFF")
    add("cut.tiff", failed(reasons.DECODE_ERROR), "TIFF cut short").write_bytes(buffer.getvalue()[:200])
    if avif_available():
        rgb.save(add("photo.avif", INDEXED, "AVIF"))
    if heif_available():
        rgb.save(add("photo.heic", INDEXED, "HEIC (pillow-heif)"), format="HEIF")


def _links_and_specials(lib: Path, outside: Path, add) -> None:
    (lib / "sub").mkdir()
    make_image(lib / "sub" / "deep.jpg", 10)
    add("sub/deep.jpg", INDEXED, "an image in a subfolder")
    os.symlink(lib / "sub" / "deep.jpg", add("link_to_deep.jpg", INDEXED, "link to a file inside"))
    os.symlink(outside / "elsewhere.jpg", add("link_out.jpg", INDEXED, "link to a file outside (followed)"))
    os.symlink(lib / "missing.jpg", add("broken.jpg", ignored(reasons.BROKEN_SYMLINK), "broken link"))
    os.symlink("loop.jpg", add("loop.jpg", ignored(reasons.SYMLINK_LOOP), "a link to itself"))
    os.symlink("..", add("sub/up", ignored(reasons.SYMLINK_LOOP), "a link to the folder above"))
    os.symlink(outside, add("outside_folder", ignored(reasons.SYMLINK_OUTSIDE), "a link to a folder outside"))
    os.symlink(lib / "sub", add("sub_again", ignored(reasons.SYMLINKED_FOLDER), "a link to a folder inside"))
    os.mkfifo(add("fifo.jpg", ignored(reasons.NOT_A_REGULAR_FILE), "a FIFO named .jpg"))
    os.symlink("/dev/null", add("null.png", ignored(reasons.NOT_A_REGULAR_FILE), "a link to a device file"))
    for name, what in [("clip.mp4", "video"), ("raw.CR2", "camera RAW"), ("pic.sgi", "SGI"), ("notes.md", "text")]:
        add(name, ignored(reasons.UNSUPPORTED_TYPE), what).write_bytes(b"\0" * 64)


def _sidecars_and_audio(lib: Path, add) -> None:
    make_image(add("captioned.jpg", INDEXED, "image with a binary .txt sidecar"), 11)
    add("captioned.txt", failed(reasons.BAD_SIDECAR), "binary .txt sidecar").write_bytes(bytes(range(1, 256)) * 8)
    make_image(add("good_caption.jpg", INDEXED, "image with a good sidecar"), 12)
    (lib / "good_caption.txt").write_text("a red kite over green hills\n", encoding="utf-8")
    add("empty.wav", failed(reasons.EMPTY_FILE), "0-byte audio with a .srt").write_bytes(b"")
    (lib / "empty.srt").write_text(SRT)
    add("corrupt.wav", failed(reasons.DECODE_ERROR), "corrupt audio with a .srt").write_bytes(b"RIFF" + b"\x07" * 400)
    (lib / "corrupt.srt").write_text(SRT)
    write_wav(add("silent.wav", INDEXED, "silent audio with a .srt"), silent=True)
    (lib / "silent.srt").write_text(SRT)
    write_wav(add("talk.wav", failed(reasons.BAD_SIDECAR), "audio whose .srt is binary (its only transcript)"))
    (lib / "talk.srt").write_bytes(b"\0\1\2" * 100)
