"""Reduced-size JPEG decoding (``draft``): never below the size asked for, EXIF orientation kept, full size reported."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.imageio import decode_image, load_image

LIMIT = 10**8


def two_colour_jpeg(size: tuple[int, int], orientation: int | None = None) -> bytes:
    """Left half red, right half blue (as stored), optionally with an EXIF orientation."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (220, 20, 20)
    pixels[:, width // 2 :] = (20, 20, 220)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_but_never_below_the_minimum() -> None:
    data = two_colour_jpeg((1000, 800))
    image, full = decode_image(data, LIMIT, (224, 224))
    assert full == (1000, 800)
    assert image.size == (500, 400)  # 1/4 would give 250x200, under 224
    assert min(image.size) >= 224
    assert load_image(data, LIMIT).size == (1000, 800)  # without a minimum: full size


@pytest.mark.parametrize("size", [(500, 375), (300, 200), (224, 224)])
def test_no_reduction_when_half_size_would_be_too_small(size: tuple[int, int]) -> None:
    image, full = decode_image(two_colour_jpeg(size), LIMIT, (224, 224))
    assert image.size == full == size


def test_exif_orientation_still_applies_to_a_reduced_decode() -> None:
    data = two_colour_jpeg((1000, 600), orientation=6)  # shown rotated 90 degrees clockwise
    image, full = decode_image(data, LIMIT, (224, 224))
    assert full == (600, 1000)
    assert image.size == (300, 500) and min(image.size) >= 224
    pixels = np.asarray(image, dtype=np.float32)
    top, bottom = pixels[:200].mean(axis=(0, 1)), pixels[-200:].mean(axis=(0, 1))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]  # stored left (red) is now on top
    reference = np.asarray(load_image(data, LIMIT).resize(image.size, Image.Resampling.BICUBIC), dtype=np.float32)
    assert np.abs(pixels - reference).mean() < 3.0


def test_other_formats_are_decoded_at_full_size(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (900, 700), (10, 200, 30)).save(path)
    image, full = decode_image(str(path), LIMIT, (224, 224))
    assert image.size == full == (900, 700)


class DraftingFakeEncoder(FakeEncoder):
    """The fake encoder asking for reduced-size decoding, as the open_clip one does."""

    min_decode_size = (32, 32)


def test_ingest_records_the_full_size_of_a_reduced_decode(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "big.jpg").write_bytes(two_colour_jpeg((1000, 600), orientation=6))
    encoder = DraftingFakeEncoder(16)
    with Engine.open(
        tmp_path / "home", model="fake:16", db_url="sqlite://", encoder_factory=lambda name, device: encoder
    ) as engine:
        report = engine.ingest(folder)
        assert report.embedded == 1 and report.failed == []
        (known,) = engine.store.files_under(str(folder.resolve())).values()
    assert (known.width, known.height) == (600, 1000)
