"""Reduced-size JPEG decoding (``draft``): never below the size asked for, EXIF orientation kept, full size reported."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch import Engine
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.errors import UnreadableMediaError
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


def captioned_jpeg(size: tuple[int, int], orientation: int) -> bytes:
    """A JPEG with an EXIF description, a capture date and an orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010E] = "a red and blue flag over the harbour"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 12:30:00"
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def test_decode_whole_parses_the_file_once_and_probes_as_read_probe(tmp_path: Path, monkeypatch) -> None:
    """The ingest's decoder reads captions and the date from the header of the one ``Image.open`` it decodes,
    before the reduced-scale draft (full size) - the same probe ``read_probe`` makes from the file."""
    from mmsearch.ingest.reading import decode_whole, read_probe

    data = captioned_jpeg((1000, 600), orientation=6)
    path = tmp_path / "flag.jpg"
    path.write_bytes(data)
    opened: list[tuple[int, int]] = []
    original = Image.open

    def counting_open(*args, **kwargs):
        image = original(*args, **kwargs)
        opened.append(image.size)
        return image

    monkeypatch.setattr(Image, "open", counting_open)
    image, probe = decode_whole(data, LIMIT, (224, 224))
    assert opened == [(1000, 600)]
    assert image.size == (300, 500)  # drafted at 1/2, turned by the orientation
    expected = read_probe(str(path))
    assert probe.content_hash == expected.content_hash
    assert (probe.width, probe.height) == (600, 1000)
    assert [item.text for item in probe.embedded] == ["a red and blue flag over the harbour"]
    assert probe.embedded == expected.embedded and probe.taken_at == expected.taken_at is not None


def test_decode_image_reads_no_header_of_an_image_over_the_limits() -> None:
    seen: list[Image.Image] = []
    with pytest.raises(UnreadableMediaError, match="over the limit"):
        decode_image(captioned_jpeg((400, 300), orientation=1), 400 * 300 - 1, None, seen.append)
    assert seen == []
